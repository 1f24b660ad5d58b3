"""New catalogue items through the stream (issue 37): a dropped catalogue file gives each new item its text
embedding, semantic columns and content-only student vector, offline (the tables' stream partition) and in
the Feast online store, without a retrain; bad rows are rejected with reasons; events on the new item are
then accepted and its user-item columns computed at request time."""

from __future__ import annotations

import csv
import os
import time
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_features.catalogue import (
    HISTORIES,
    ITEM_SEMANTIC,
    ITEM_STUDENT,
    ITEM_TEXT_EMBEDDINGS,
    STREAM_EVENTS,
    STREAM_ITEM_REJECTS,
    STREAM_PARTITION,
    DataDir,
)
from tests.integration.test_stream import _newest, _setup, _write_files

pytestmark = [pytest.mark.spark, pytest.mark.feast, pytest.mark.slow]

ITEM_HEADER = ["item_id", "title", "genres", "year", "description"]
NEW_ITEM = ("brand-new-item", "Night Songs for Empty Streets", "Jazz|Blues", "2026", "Slow piano and a muted horn.")
ROWS = [
    NEW_ITEM,
    ("", "An item without an id", "", "", ""),  # null item_id
    ("untitled-item", "\u200b\u200b", "Rock", "", ""),  # a title of invisible characters only: empty
    NEW_ITEM[:1] + ("The same id again", "", "", ""),  # duplicate item_id
]


def _land_items(folder: Path, rows) -> None:
    staged = folder.parent / ".items.csv"
    with staged.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ITEM_HEADER)
        writer.writerows(rows)
    moment = time.time() - 30
    os.utime(staged, (moment, moment))
    staged.rename(folder / "items-000.csv")


def _with_stream(config, **stream):
    merged = {**config.stream.model_dump(), **stream}
    return type(config).model_validate({**config.model_dump(), "stream": merged})


def _online(repo: Path, features: list[str], key: str, ids: list[str], **more) -> dict:
    from feast import FeatureStore

    return (
        FeatureStore(repo_path=str(repo))
        .get_online_features(features=features, entity_rows=[{key: i, **more} for i in ids])
        .to_dict(include_event_timestamps=not more)
    )


@pytest.fixture(scope="module")
def item_stream(module_tmp, pipeline_run, spark):
    from profile_features.spark.student_job import run_train_student
    from profile_features.streaming.job import run_stream

    root = module_tmp / "item-stream"

    root.mkdir()
    config, data, repo, events = _setup(root, pipeline_run)
    # The session's student may ship without item content (its guard decides on the sample); retrain the newest
    # snapshot's with the configured item text view, so a new item's content-only vector is exercised.
    student = {**config.student.model_dump(), "overrides": [*config.student.overrides, "guard.enabled=false"]}
    config = type(config).model_validate({**config.model_dump(), "student": student})
    run_train_student(spark, config, DataDir(str(data)).snapshot(max(DataDir(str(data)).run_dates(HISTORIES))))
    incoming = root / "items"
    incoming.mkdir()
    _land_items(incoming, ROWS)
    items_only = _with_stream(config, source=None, items_source={"path": str(incoming), "format": "csv"})
    first = run_stream(spark, items_only)
    return {"config": items_only, "data": data, "repo": repo, "events": events, "first": first, "root": root}


def _expected(config, data: Path) -> pd.DataFrame:
    """The new item's features computed directly with the snapshot's encoder, transforms and checkpoint."""
    from profile_features.embeddings import cached_encoder
    from profile_features.streaming.item_features import featurize_items
    from profile_features.streaming.items import encoder_choice, item_side
    from profile_features.streaming.micro_batch import newest_snapshot

    snapshot, cutoff = newest_snapshot(str(data))
    side = item_side(config, snapshot)
    item = pd.DataFrame([dict(zip(ITEM_HEADER, NEW_ITEM))]).assign(year=2026)
    return featurize_items(
        item,
        side,
        cached_encoder(config.embedding, None, encoder_choice(config)),
        pd.Timestamp(cutoff),
        config.profile.sanitize,
    )


def test_every_task_slot_is_warmed_with_what_the_first_item_batch_loads(item_stream, spark):
    """Before its first item the item stream chooses the encoder backend and loads it, the snapshot's checkpoint
    and the applied repo's Feast store in a Python worker per task slot, so the first new item does not wait for
    them; an item view the repo lacks fails there."""
    from feast import FeatureStore

    from profile_features.streaming.items import ItemMicroBatch, encoder_choice, item_side
    from profile_features.streaming.micro_batch import newest_snapshot
    from profile_features.student.scoring import load_student

    config = item_stream["config"]
    processor = ItemMicroBatch(config)
    warmed = processor.warm_up(spark)
    assert len(warmed) == spark.sparkContext.defaultParallelism
    side = item_side(config, newest_snapshot(config.data_dir)[0])
    assert set(warmed.encoder) == {side.encoder}  # the snapshot's item vectors' encoder, as the batch checks
    assert processor._choice == encoder_choice(config)  # chosen at start, not at the first micro-batch
    assert set(warmed.checkpoint) == {load_student(side.checkpoint).checkpoint_id}
    assert set(warmed.project) == {FeatureStore(repo_path=str(item_stream["repo"])).project}
    view = config.stream.model_copy(update={"item_text_view": "no_such_item_view"})
    with pytest.raises(Exception, match="no_such_item_view"):
        ItemMicroBatch(config.model_copy(update={"stream": view})).warm_up(spark)


def test_bad_catalogue_rows_are_rejected_with_reasons_and_counted(item_stream):
    (batch,) = item_stream["first"].item_batches
    assert (batch.read, batch.accepted) == (4, 1)
    assert batch.rejected_by_reason == {"null item_id": 1, "empty title": 1, "duplicate item_id": 1}
    rejects = pd.read_parquet(item_stream["data"] / STREAM_ITEM_REJECTS.name)
    assert sorted(rejects.reason) == ["duplicate item_id", "empty title", "null item_id"]
    assert rejects.source_file.str.endswith("items-000.csv").all() and rejects.record.str.len().gt(0).all()


def test_a_new_item_gets_the_snapshots_features_offline(item_stream):
    data, config = item_stream["data"], item_stream["config"]
    want = _expected(config, data)
    snapshot_items = set(_newest(data, ITEM_TEXT_EMBEDDINGS).item_id)
    assert NEW_ITEM[0] not in snapshot_items
    for table in (ITEM_TEXT_EMBEDDINGS, ITEM_SEMANTIC, ITEM_STUDENT):
        got = pd.read_parquet(Path(DataDir(str(data)).partition(table, STREAM_PARTITION)))
        assert list(got.item_id) == [NEW_ITEM[0]], table.name
        row = got.iloc[0]
        for column in got.columns:
            if column in ("item_id", "event_timestamp"):
                continue
            value, expected = row[column], want[column].iloc[0]
            if isinstance(expected, (np.ndarray, list)):
                np.testing.assert_allclose(np.asarray(value, np.float32), np.asarray(expected, np.float32), atol=1e-5)
            elif isinstance(expected, float):
                np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
            else:
                assert value == expected, (table.name, column)
    student = pd.read_parquet(Path(DataDir(str(data)).partition(ITEM_STUDENT, STREAM_PARTITION))).iloc[0]
    assert not student.student_item_seen  # no retrain: the checkpoint never saw it, and scores it by its text
    assert len(student.student_item_embedding) > 0 and np.isfinite(student.student_item_bias)
    text = pd.read_parquet(Path(DataDir(str(data)).partition(ITEM_TEXT_EMBEDDINGS, STREAM_PARTITION))).iloc[0]
    assert text.item_text.startswith("Night Songs for Empty Streets (2026). Genres: Jazz, Blues.")


def test_a_new_item_is_online_with_its_arrival_time(item_stream, pipeline_run):
    data = item_stream["data"]
    (batch,) = item_stream["first"].item_batches
    views = ["item_text", "item_semantic", "item_student"]
    assert set(batch.online_written) == set(views) and set(batch.online_written.values()) == {1}
    got = _online(
        item_stream["repo"],
        ["item_text:item_text_embedding", "item_semantic:item_cluster", "item_student:student_item_bias"],
        "item_id",
        [NEW_ITEM[0]],
    )
    offline = {
        t: pd.read_parquet(Path(DataDir(str(data)).partition(t, STREAM_PARTITION))).iloc[0]
        for t in (ITEM_TEXT_EMBEDDINGS, ITEM_SEMANTIC, ITEM_STUDENT)
    }
    np.testing.assert_allclose(
        got["item_text_embedding"][0], offline[ITEM_TEXT_EMBEDDINGS].item_text_embedding, atol=1e-6
    )
    assert got["item_cluster"][0] == offline[ITEM_SEMANTIC].item_cluster
    assert np.isclose(got["student_item_bias"][0], offline[ITEM_STUDENT].student_item_bias)
    cutoff = pipeline_run["cutoffs"][-1].replace(tzinfo=timezone.utc)
    stamp = got["item_text_embedding__ts"][0]  # epoch seconds, as Feast keeps them
    arrived = offline[ITEM_TEXT_EMBEDDINGS].event_timestamp
    assert arrived == pd.Timestamp(batch.feature_time) and arrived >= cutoff  # the file's arrival, after the cutoff
    assert stamp == int(arrived.timestamp())


def test_events_on_the_new_item_are_accepted_and_scored_against_it(item_stream, pipeline_run, spark):
    from profile_features.streaming.job import run_stream

    data, config, events = item_stream["data"], item_stream["config"], item_stream["events"]
    user = sorted(_newest(data, HISTORIES).user_id)[0]
    cutoff = pipeline_run["cutoffs"][-1].replace(tzinfo=timezone.utc)
    _write_files(events, [[(user, NEW_ITEM[0], cutoff + timedelta(minutes=5))]])
    both = _with_stream(config, source={"path": str(events), "format": "csv", "options": {"maxFilesPerTrigger": "1"}})
    result = run_stream(spark, both)
    assert result.item_batches == ()  # the item query had nothing new
    (batch,) = result.batches
    assert (batch.read, batch.accepted, batch.rejected_by_reason) == (1, 1, {})
    streamed = pd.read_parquet(data / STREAM_EVENTS.name)
    assert list(streamed.item_id) == [NEW_ITEM[0]]
    got = _online(
        item_stream["repo"],
        ["user_item_similarity:profile_item_similarity", "user_item_similarity:student_item_score"],
        "user_id",
        [user],
        item_id=NEW_ITEM[0],
    )
    assert np.isfinite(got["profile_item_similarity"][0])  # the user's profile against the new item's text
    assert np.isfinite(got["student_item_score"][0])  # the student's logit for the item it never trained on
