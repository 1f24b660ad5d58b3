"""The Spark wrappers and entry files, on small generated data, in local mode."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from profile_features.histories import build_histories
from profile_features.student.checkpoint import checkpoint_location
from profile_features.validation import InputSchemaError
from tests.support.repo import REPO_ROOT, local_table

pytestmark = pytest.mark.spark


def read(path):
    return pd.read_parquet(path)


def partition(config, table, cutoff):
    return local_table(config, table) / f"run_date={cutoff:%Y-%m-%d}"


def test_pipeline_writes_every_table_per_snapshot(pipeline_run, small_sample):
    config, cutoffs = pipeline_run["config"], pipeline_run["cutoffs"]
    assert len(cutoffs) == 2
    for cutoff in cutoffs:
        before = small_sample.interactions[small_sample.interactions.timestamp < cutoff]
        histories = read(partition(config, "histories", cutoff))
        assert sorted(histories.user_id) == sorted(before.user_id.unique())
        profiles = read(partition(config, "profiles", cutoff))
        assert sorted(profiles.user_id) == sorted(histories.user_id)
        vectors = read(partition(config, "user_profile_embeddings", cutoff))
        assert sorted(vectors.user_id) == sorted(histories.user_id)
        assert {len(v) for v in vectors.profile_embedding} == {384}
        items = read(partition(config, "item_text_embeddings", cutoff))
        assert sorted(items.item_id) == sorted(small_sample.items.item_id)
        stats = read(partition(config, "item_stats", cutoff)).set_index("item_id")
        assert len(stats) == len(small_sample.items)  # unseen items get count 0, not a gap
        expected = before.groupby("item_id").size().reindex(stats.index, fill_value=0)
        assert (stats.item_interaction_count == expected).all()
        assert str(vectors.event_timestamp.dtype) == "datetime64[us, UTC]"
        assert (vectors.event_timestamp == cutoff).all()


def test_semantic_columns_reuse_one_transform_across_snapshots(pipeline_run, small_sample):
    config, (early, late) = pipeline_run["config"], pipeline_run["cutoffs"]
    first, second = (read(partition(config, "user_semantic", c)) for c in (early, late))
    assert set(first.profile_transform_id) == set(second.profile_transform_id)
    assert len(set(first.profile_transform_id)) == 1
    assert sorted(second.user_id) == sorted(read(partition(config, "histories", late)).user_id)
    assert [f"profile_pc_{i}" for i in range(16)] == [c for c in second.columns if c.startswith("profile_pc_")]
    assert second.profile_cluster.between(0, 15).all()
    items = read(partition(config, "item_semantic", late))
    assert sorted(items.item_id) == sorted(small_sample.items.item_id)
    transforms = local_table(config, "transforms")
    assert sorted(p.name.split("-")[0] for p in transforms.iterdir()) == ["item", "profile", "sid"]
    summaries = [s["semantic"]["transforms"]["profile"]["fitted_now"] for s in pipeline_run["summaries"]["snapshots"]]
    assert summaries == [True, False]
    # Semantic IDs: one transform for both snapshots, 3 levels of codes for every item, the same codes.
    sid = [s["semantic"]["semantic_ids"] for s in pipeline_run["summaries"]["snapshots"]]
    assert [s["fitted_now"] for s in sid] == [True, False] and sid[0]["transform_id"] == sid[1]["transform_id"]
    early_items = read(partition(config, "item_semantic", early)).set_index("item_id")
    codes = items.set_index("item_id")[["item_sid_0", "item_sid_1", "item_sid_2"]]
    assert (codes >= 0).all().all() and (codes < sid[0]["codes"]).all().all()
    assert codes.equals(early_items.loc[codes.index, codes.columns])
    assert set(items.item_sid_transform_id) == {sid[0]["transform_id"]}


def test_student_scores_every_user_of_each_snapshot(pipeline_run):
    config = pipeline_run["config"]
    for cutoff, summary in zip(pipeline_run["cutoffs"], pipeline_run["summaries"]["snapshots"]):
        histories = read(partition(config, "histories", cutoff))
        scored = read(partition(config, "user_student", cutoff))
        assert sorted(scored.user_id) == sorted(histories.user_id)  # one row per input user
        assert {len(v) for v in scored.student_embedding} == {64}
        assert {len(v) for v in scored.student_profile_embedding} == {384}
        assert scored.profile_drift.between(0.0, 2.0).all()  # every user here has a profile
        assert (scored.event_timestamp == cutoff).all()
        assert scored.student_checkpoint_id.nunique() == 1
        assert scored.student_checkpoint_id.iloc[0] == summary["train_student"]["checkpoint_id"]
        # The deployment guard's choice is served, and the job summary says why.
        assert set(scored.student_variant) == {summary["train_student"]["variant"]}
        assert summary["train_student"]["guard"]["reason"] and summary["score_student"]["variants"] == [
            summary["train_student"]["variant"]
        ]
        root = local_table(config, "student") / f"run_date={cutoff:%Y-%m-%d}"
        assert checkpoint_location(root) == str(root / "versions" / summary["train_student"]["checkpoint_id"])
        assert (Path(checkpoint_location(root)) / "student.json").exists()


def test_student_reads_item_content_and_scores_every_catalogue_item(pipeline_run, small_sample):
    """The default student reads the items' text vectors (items.text auto) and its index covers the
    catalogue, so the scoring job gives every catalogue item a vector and bias, including items nobody
    interacted with before the cutoff, whichever variant the guard shipped."""
    from profile_features.student.checkpoint import load_checkpoint

    config = pipeline_run["config"]
    interactions = small_sample.interactions
    for cutoff in pipeline_run["cutoffs"]:
        items = read(partition(config, "item_student", cutoff)).set_index("item_id")
        assert sorted(items.index) == sorted(small_sample.items.item_id)
        loaded = load_checkpoint(local_table(config, "student") / f"run_date={cutoff:%Y-%m-%d}")
        if loaded.variant == "popularity":  # the prior serves no item side (student/scoring.py)
            assert items.student_item_embedding.isna().all() and items.student_item_bias.isna().all()
        else:
            assert items.student_item_embedding.map(len).eq(64).all() and items.student_item_bias.notna().all()
        before = set(interactions[interactions.timestamp < cutoff].item_id)
        unseen = sorted(set(items.index) - before)
        assert not items.loc[unseen, "student_item_seen"].any()
        # The configured student reads the text vectors; a fallback the guard shipped reads none.
        configured = loaded.variant == "configured"
        assert loaded.model.items.text_dim == (384 if configured else 0) and loaded.item_features["text_encoder"]
        seen_by_model = set(np.array(loaded.item_index.item_ids)[loaded.model.items.seen[1:].numpy()])
        assert set(items.index[items.student_item_seen]) == seen_by_model
    early = read(partition(config, "item_student", pipeline_run["cutoffs"][0])).set_index("item_id")
    assert (~early.student_item_seen).any()  # the early snapshot has items nobody had touched yet
    # The second snapshot's student serves its vectors in the first one's basis (student/alignment.py).
    first, second = (
        load_checkpoint(local_table(config, "student") / f"run_date={cutoff:%Y-%m-%d}")
        for cutoff in pipeline_run["cutoffs"]
    )
    assert first.output_rotation is None and second.stats.extra["aligned_to"] == first.checkpoint_id


def test_spark_histories_equal_the_pandas_function(pipeline_run, small_sample):
    config, cutoff = pipeline_run["config"], pipeline_run["cutoffs"][0]
    spark_out = read(partition(config, "histories", cutoff)).sort_values("user_id").reset_index(drop=True)
    events = small_sample.interactions.merge(small_sample.items, on="item_id")
    pandas_out = build_histories(events, cutoff, config.history.max_length).reset_index(drop=True)
    assert spark_out.history_hash.tolist() == pandas_out.history_hash.tolist()
    assert spark_out.item_ids.map(list).tolist() == pandas_out.item_ids.tolist()


def test_embeddings_match_the_encoder(pipeline_run, encoder):
    """The default backend (OpenVINO, bf16 on the fp32 export) writes the torch model's vectors, and
    says so in every row and in the run summary."""
    config, cutoff = pipeline_run["config"], pipeline_run["cutoffs"][-1]
    vectors = read(partition(config, "user_profile_embeddings", cutoff)).head(5)
    got, expected = np.stack(vectors.profile_embedding), encoder.encode(vectors.profile_text.tolist())
    assert ((got * expected).sum(axis=1) / np.linalg.norm(got, axis=1)).min() > 0.999
    choice = pipeline_run["summaries"]["snapshots"][-1]["embeddings"]["encoder"]
    assert choice["backend"] == "openvino" and choice["fallback_reason"] is None
    assert set(vectors.encoder) == {choice["name"]} and choice["name"].startswith("all-MiniLM-L6-v2+openvino-bf16-")
    assert set(read(partition(config, "item_text_embeddings", cutoff)).encoder) == {choice["name"]}
    assert set(vectors.generator) == {"rule_based"} and vectors.history_hash.str.len().eq(32).all()


def write_job_yaml(tmp_path, interactions_path, items_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": {"interactions": {"path": str(interactions_path)}, "items": {"path": str(items_path)}},
                "spark": {"master": "local[2]"},
            }
        )
    )
    return path


def test_validate_entry_writes_rejects_and_accounts_for_every_row(tmp_path, spark):
    from profile_features.spark_jobs import validate_inputs

    items = tmp_path / "items.csv"
    items.write_text("item_id,title,genres\ni1,Alpha,Drama\ni2,Beta,Comedy\ni2,Beta again,Comedy\n,No id,Drama\n")
    interactions = tmp_path / "events.csv"
    interactions.write_text(
        "user_id,item_id,timestamp,rating\n"
        "u1,i1,2026-01-01T00:00:00Z,5\n"
        "u1,i1,2026-01-01T00:00:00Z,5\n"
        "u1,i2,tomorrow,4\n"
        ",i2,1767225600,3\n"
        "u2,i3,1767225600,3\n"
        "u2,i2,1767225600,\n"
    )
    summary = validate_inputs.main(["--config", str(write_job_yaml(tmp_path, interactions, items))])
    tables = summary["tables"]
    assert tables["items"] == {
        "source": str(items),
        "read": 4,
        "accepted": 2,
        "rejected": 2,
        "rejected_by_reason": {"duplicate item_id": 1, "null item_id": 1},
        "nulled_by_reason": {},
        "rows_with_replaced_bytes": 0,
        "ignored_columns": [],
    }
    assert tables["interactions"]["read"] == 6 and tables["interactions"]["accepted"] == 2
    assert tables["interactions"]["rejected_by_reason"] == {
        "duplicate interaction": 1,
        "unparseable timestamp": 1,
        "null user_id": 1,
        "unknown item_id": 1,
    }
    rejects = read(tmp_path / "data" / "rejects")
    assert len(rejects) == 6
    bad_ts = rejects[rejects.reason == "unparseable timestamp"].iloc[0]
    assert json.loads(bad_ts.record)["timestamp"] == "tomorrow" and bad_ts.source_file.endswith("events.csv")
    accepted = read(tmp_path / "data" / "validated" / "interactions")
    assert sorted(accepted.user_id) == ["u1", "u2"]
    assert list((tmp_path / "data" / "runs").glob("validate-*.json"))


def test_missing_column_fails_naming_file_and_column(tmp_path, spark):
    from profile_features.spark_jobs import validate_inputs

    items = tmp_path / "items.csv"
    items.write_text("item_id,title\ni1,Alpha\n")
    interactions = tmp_path / "events.csv"
    interactions.write_text("user,item_id,timestamp\nu1,i1,0\n")
    with pytest.raises(InputSchemaError, match=r"events\.csv.*\['user_id'\]"):
        validate_inputs.main(["--config", str(write_job_yaml(tmp_path, interactions, items))])


def test_failed_write_leaves_the_previous_partition(tmp_path, spark):
    from profile_features.spark.io import write_atomic

    table = str(tmp_path / "t")
    partition = f"{table}/run_date=2026-01-01"
    write_atomic(spark.createDataFrame(pd.DataFrame({"x": [1, 2]})), partition)

    def explode(batches):
        for batch in batches:
            raise RuntimeError("worker died")
            yield batch

    broken = spark.createDataFrame(pd.DataFrame({"x": [3]})).mapInPandas(explode, schema="x long")
    with pytest.raises(Exception, match="worker died"):
        write_atomic(broken, partition)
    assert sorted(read(table).x) == [1, 2]
    assert [p.name for p in Path(table).iterdir()] == ["run_date=2026-01-01"]
    write_atomic(spark.createDataFrame(pd.DataFrame({"x": [7]})), partition)
    assert read(table).x.tolist() == [7]  # re-running a snapshot replaces it


@pytest.mark.slow
def test_catalogue_without_genres_profiles_from_item_text_and_marks_empty_profiles(tmp_path, spark):
    """Items described only by review snippets: profiles name recurring product terms (never
    "Unknown"), users whose items name nothing get an empty profile, no vector, null semantic columns
    and no student target."""
    from profile_features.config import JobConfig, SampleConfig
    from profile_features.datasets import generate_sample
    from profile_features.pipeline import run_pipeline, snapshot_cutoffs, write_inputs
    from profile_features.spark.profile_job import catalogue_common_terms

    sample = generate_sample(
        SampleConfig(
            users=120,
            items=150,
            mean_interactions=6,
            seed=4,
            item_text="short_noisy",
            history_lengths="geometric",
            taste_strength=0.5,
        )
    )
    config = JobConfig(
        data_dir=str(tmp_path / "data"),
        inputs=write_inputs(sample.interactions, sample.items, tmp_path / "raw"),
        semantic={"components": 4, "clusters": 4},
        student={"overrides": ["train.epochs=2", "body.max_len=20", "train.num_threads=1"]},
    )
    (cutoff,) = snapshot_cutoffs(sample.interactions.timestamp, [1.0])
    run_pipeline(spark, config, [cutoff])
    common = catalogue_common_terms(spark, config)
    assert {"nice", "great"} <= common and not common & {"amp", "speaker", "drone"}  # generic words only

    profiles = read(partition(config, "profiles", cutoff))
    texts = profiles.profile_text.fillna("")
    assert not texts.str.contains("Unknown").any()
    assert texts.str.contains("Items often mention|Representative titles").any()
    empty = set(profiles.user_id[texts == ""])
    assert 0 < len(empty) < len(profiles)
    vectors = read(partition(config, "user_profile_embeddings", cutoff)).set_index("user_id")
    assert all(vectors.profile_embedding[u] is None for u in empty)
    semantic = read(partition(config, "user_semantic", cutoff)).set_index("user_id")
    assert semantic.loc[sorted(empty), "profile_pc_0"].isna().all()
    assert (semantic.loc[sorted(empty), "profile_cluster"] == -1).all()
    said = sorted(set(profiles.user_id) - empty)
    assert semantic.loc[said, "profile_pc_0"].notna().all()
    train_summary = sorted(local_table(config, "runs").glob("train_student-*.json"))[-1]
    assert json.loads(train_summary.read_text())["users_with_profile"] == len(said)


def test_every_entry_file_runs_its_registry_stage_and_every_stage_has_an_entry():
    """One registry drives both the pipeline and spark_jobs/: an entry is `run_job(STAGES[<its name>])`."""
    from profile_features.spark.registry import SNAPSHOT_STAGES, STAGES

    entries = {p.stem for p in (REPO_ROOT / "spark_jobs").glob("*.py") if p.stem != "__init__"}
    assert set(STAGES) == entries - {"refresh_plan"}  # a planning tool, not a stage with a snapshot
    for name in STAGES:
        assert f'STAGES["{name}"]' in (REPO_ROOT / "spark_jobs" / f"{name}.py").read_text()
    written = set(STAGES["validate_inputs"].writes)
    for stage in SNAPSHOT_STAGES:  # in pipeline order: a stage's snapshot comes from what ran before it
        assert stage.per_snapshot and callable(stage.function)
        assert stage.upstream is None or (stage.upstream in stage.reads and stage.upstream in written), stage.name
        written |= set(stage.writes)


def test_student_stages_run_only_when_enabled_and_training_only_without_a_checkpoint():
    from profile_features.config import JobConfig
    from profile_features.spark.registry import STAGES

    train, score = STAGES["train_student"], STAGES["score_student"]
    assert train.enabled(JobConfig()) and score.enabled(JobConfig())
    given = JobConfig(student={"checkpoint": "/models/student"})
    assert not train.enabled(given) and score.enabled(given)
    off = JobConfig(student={"enabled": False})
    assert not train.enabled(off) and not score.enabled(off)


def test_a_given_cutoff_names_the_snapshot_before_spark_is_asked():
    from datetime import datetime, timezone

    from profile_features.catalogue import HISTORIES
    from profile_features.config import JobConfig
    from profile_features.spark.common import resolve_snapshot

    config = JobConfig(data_dir="/d", history={"cutoff": "2026-05-01T12:30:00Z"})
    snapshot = resolve_snapshot(None, config, HISTORIES)  # no Spark needed: the cutoff decides
    assert snapshot.run_date == "2026-05-01" and snapshot.cutoff == datetime(2026, 5, 1, 12, 30, tzinfo=timezone.utc)
    now = resolve_snapshot(None, JobConfig(data_dir="/d"), None)  # build_histories without a cutoff: now
    assert now.cutoff.microsecond == 0 and now.run_date == now.cutoff.date().isoformat()


def test_results_describe_themselves_and_keep_the_summary_keys():
    from datetime import datetime, timezone

    from profile_features.spark.results import HistoriesResult, SemanticResult, TransformInfo

    histories = HistoriesResult(datetime(2026, 5, 1, tzinfo=timezone.utc), "2026-05-01", {"histories": "/h"}, 3, 9)
    assert histories.summary() == {
        "job": "histories",
        "cutoff": "2026-05-01T00:00:00+00:00",
        "run_date": "2026-05-01",
        "outputs": {"histories": "/h"},
        "users": 3,
        "interactions_before_cutoff": 9,
    }
    assert histories.users == 3 and histories.describe() == ["3 users, 9 interactions before the cutoff"]
    with pytest.raises(TypeError):  # fields, not keys: a renamed key fails where it is read, not at run time
        histories["users"]
    info = TransformInfo("t1", True, "user_profile_embeddings/run_date=2026-05-01", "/t/t1", 0.5)
    semantic = SemanticResult("2026-05-01", {"user_semantic": "/u"}, {"profile": info}, "enc")
    assert list(semantic.summary()) == ["job", "run_date", "outputs", "transforms", "encoder"]
    assert semantic.describe() == ["profile: transform t1 (fitted now, 50% of variance)"]
