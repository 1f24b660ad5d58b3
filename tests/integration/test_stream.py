"""The streaming student refresh (issue 37): events landing in a folder reach the Feast online store (SQLite
and Redis) as the student's scores of the users' new histories, with the event time; bad events are rejected
with reasons; out-of-order and late events take their place in time; a kill mid-write loses nothing and
applies nothing twice; drifting users are queued for the LLM within the budget. Each test streams into a
private copy of the session pipeline's data_dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_features.catalogue import HISTORIES, STREAM_PARTITION, STUDENT, USER_STUDENT, DataDir
from tests.support.repo import make_repo

pytestmark = [pytest.mark.spark, pytest.mark.feast, pytest.mark.slow]

HEADER = "user_id,item_id,timestamp,rating\n"


def _at(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _newest(data: Path, table) -> pd.DataFrame:
    frame = pd.read_parquet(data / table.name)
    run_dates = frame.run_date.astype(str)
    return frame[run_dates == max(r for r in run_dates.unique() if r != STREAM_PARTITION)]


def _setup(root: Path, pipeline_run, online_store=None):
    """(config, data, repo, events folder): a data_dir copy, a repo applied and materialized on it."""
    from profile_features.pipeline import apply_and_materialize

    data = root / "data"
    shutil.copytree(pipeline_run["data_dir"], data, ignore=shutil.ignore_patterns("encoders"))
    repo = make_repo(root, data, online_store)
    apply_and_materialize(repo)
    events = root / "events"
    events.mkdir()
    stream = {
        "source": {"path": str(events), "format": "csv", "options": {"maxFilesPerTrigger": "1"}},
        "available_now": True,
        "feature_repo": str(repo),
    }
    config = pipeline_run["config"]
    config = type(config).model_validate({**config.model_dump(), "data_dir": str(data), "stream": stream})
    return config, data, repo, events


def _scenario(data: Path, pipeline_run) -> dict:
    """Three event files after the newest cutoff: a known user, a new one, bad rows, an out-of-order event."""
    histories = _newest(data, HISTORIES)
    items = sorted(pd.read_parquet(data / "validated" / "items").item_id)
    known = sorted(histories.user_id)[2]
    cutoff = pipeline_run["cutoffs"][-1].replace(tzinfo=timezone.utc)
    t = lambda minutes: cutoff + timedelta(minutes=minutes)  # noqa: E731
    files = [
        [(known, items[1], t(10)), ("new-user", items[2], t(11)), ("new-user", items[3], t(12))],
        [
            (known, items[4], t(30)),
            (known, "no-such-item", t(31)),  # unknown item
            ("new-user", items[5], "yesterday-ish"),  # unreadable timestamp
            (known, items[6], t(20)),  # out of order: older than the t(30) event in the same file
        ],
        [("new-user", items[7], t(5)), (known, items[1], t(10))],  # late (before t(12)); a duplicate of file 1
    ]
    return {"known": known, "new": "new-user", "items": items, "cutoff": cutoff, "t": t, "files": files}


def _write_files(events: Path, files, start: int = 0) -> None:
    """Each file lands whole (written aside, renamed in), with a modification time one second after the one
    before: Spark's file source takes files in modification-time order, and files written in the same
    millisecond would tie (the micro-batches, hence the batch each event is judged in, would vary)."""
    import os
    import time

    base = time.time() - 60
    for index, rows in enumerate(files, start):
        lines = [f"{u},{i},{_at(ts) if isinstance(ts, datetime) else ts},4\n" for u, i, ts in rows]
        staged = events.parent / f".events-{index}.csv"
        staged.write_text(HEADER + "".join(lines))
        os.utime(staged, (base + index, base + index))
        staged.rename(events / f"events-{index:03d}.csv")  # land whole, as a real producer does


def _expected(data: Path, scenario: dict, user: str, base: list[str]) -> tuple[np.ndarray, datetime]:
    """The student's embedding of `user`'s history (snapshot items, then every valid streamed item after the
    cutoff in time order, once), scored directly with the checkpoint; and the newest event time."""
    from profile_features.student.scoring import load_student, score_users

    streamed = sorted(
        {(ts, item) for rows in scenario["files"] for u, item, ts in rows if u == user and isinstance(ts, datetime)}
    )
    streamed = [(ts, item) for ts, item in streamed if item in scenario["items"] and ts >= scenario["cutoff"]]
    history = (base + [item for _, item in streamed])[-50:]
    run_date = max(DataDir(str(data)).run_dates(HISTORIES))
    model = load_student(str(data / STUDENT.name / f"run_date={run_date}"))
    scored = score_users(pd.DataFrame({"user_id": [user], "item_ids": [history]}), model)
    return np.asarray(scored.student_embedding[0], dtype=np.float32), streamed[-1][0]


def _online(repo: Path, users: list[str]) -> dict:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    return store.get_online_features(
        features=["user_student:student_embedding", "user_student:student_history_len"],
        entity_rows=[{"user_id": u} for u in users],
    ).to_dict(include_event_timestamps=True)


def _assert_same_online(got: dict, want: dict) -> None:
    """Equal online rows: the same event times and history lengths, embeddings equal up to float rounding."""
    assert {k: v for k, v in got.items() if k != "student_embedding"} == {
        k: v for k, v in want.items() if k != "student_embedding"
    }
    for a, b in zip(got["student_embedding"], want["student_embedding"]):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-5, atol=1e-6)


def _run(config, spark):
    from profile_features.streaming.job import run_stream

    return run_stream(spark, config)


@pytest.fixture(scope="module")
def streamed(module_tmp, pipeline_run, spark):
    root = module_tmp / "stream"
    root.mkdir()
    config, data, repo, events = _setup(root, pipeline_run)
    scenario = _scenario(data, pipeline_run)
    before = _online(repo, [scenario["known"], scenario["new"]])
    _write_files(events, scenario["files"])
    result = _run(config, spark)
    return {**locals(), "after": _online(repo, [scenario["known"], scenario["new"]])}


def test_new_and_known_users_get_fresh_student_features_online(streamed):
    """The online value is the student's score of the history a person would write down by hand."""
    s, data = streamed["scenario"], streamed["data"]
    base = list(_newest(data, HISTORIES).set_index("user_id").item_ids[s["known"]])
    assert streamed["before"]["student_embedding"][1] is None  # a new user had nothing online
    for index, (user, prefix) in enumerate([(s["known"], base), (s["new"], [])]):
        expected, newest = _expected(data, s, user, prefix)
        online = np.asarray(streamed["after"]["student_embedding"][index], dtype=np.float32)
        np.testing.assert_allclose(online, expected, rtol=1e-4, atol=1e-5)
        assert streamed["after"]["student_embedding__ts"][index] == int(newest.timestamp())
    assert streamed["after"]["student_embedding"][0] != streamed["before"]["student_embedding"][0]


def test_bad_events_are_rejected_with_reasons_and_counted(streamed):
    summary = streamed["result"].summary()
    assert summary["micro_batches"] == 3
    assert summary["events"] == 9 and summary["accepted"] == 7
    assert summary["rejected_by_reason"] == {"unknown item_id": 1, "unparseable timestamp": 1}
    rejects = pd.read_parquet(streamed["data"] / "stream" / "rejects")
    assert sorted(rejects.reason) == ["unknown item_id", "unparseable timestamp"]
    assert rejects.record.str.contains("no-such-item").sum() == 1
    assert set(rejects.source_file.str.rsplit("/", n=1).str[-1]) == {"events-001.csv"}
    phases = ["validate", "write_events", "histories_and_score", "online", "refresh_queue"]
    for batch in summary["batches"]:  # each batch says where its time went, within its own seconds
        assert list(batch["phase_seconds"]) == phases
        # each lap and the total are rounded to the millisecond alone: their sum may pass it by half of one a lap
        assert 0 < sum(batch["phase_seconds"].values()) <= batch["seconds"] + 0.0005 * len(phases)


def test_every_task_slot_is_warmed_with_what_the_first_batch_loads(streamed, spark):
    """Before its first event the stream loads the snapshot's checkpoint and opens the applied repo's Feast store in
    a Python worker per task slot, so the first micro-batch does not pay them; a view the repo lacks fails there."""
    from feast import FeatureStore

    from profile_features.spark.student_job import checkpoint_dir
    from profile_features.streaming.micro_batch import MicroBatch, newest_snapshot
    from profile_features.student.scoring import load_student

    config = streamed["config"]
    warmed = MicroBatch(config).warm_up(spark)
    assert len(warmed) == spark.sparkContext.defaultParallelism
    snapshot = newest_snapshot(config.data_dir)[0]
    assert set(warmed.checkpoint) == {load_student(checkpoint_dir(config, snapshot)).checkpoint_id}
    assert set(warmed.project) == {FeatureStore(repo_path=str(streamed["repo"])).project}
    unknown = config.model_copy(update={"stream": config.stream.model_copy(update={"user_view": "no_such_view"})})
    with pytest.raises(Exception, match="no_such_view"):
        MicroBatch(unknown).warm_up(spark)


def test_streamed_rows_are_appended_offline_beside_the_snapshots(streamed):
    """Feast's source reads the stream partition with the snapshots: a training set built later sees what
    was served, and the pipeline still takes only dated partitions for snapshots."""
    data, s = streamed["data"], streamed["scenario"]
    rows = pd.read_parquet(data / USER_STUDENT.name / f"run_date={STREAM_PARTITION}")
    assert set(rows.user_id) == {s["known"], s["new"]}
    assert len(rows) == 5  # known in batches 0, 1, 2; new in 0 and 2 (its batch-1 row was rejected)
    assert DataDir(str(data)).run_dates(USER_STUDENT) == DataDir(str(data)).run_dates(HISTORIES)
    newest = rows.sort_values("event_timestamp").groupby("user_id").last()
    assert newest.loc[s["known"], "student_history_len"] == streamed["after"]["student_history_len"][0]


def test_a_rerun_over_the_same_files_changes_nothing(streamed, spark):
    """Spark's checkpoint: nothing is read twice, so nothing is applied twice."""
    again = _run(streamed["config"], spark)
    assert again.summary()["micro_batches"] == 0
    _assert_same_online(
        _online(streamed["repo"], [streamed["scenario"]["known"], streamed["scenario"]["new"]]), streamed["after"]
    )


KILLED_MID_WRITE = """
import os, signal, sys
from profile_features.config import load_config
from profile_features.spark.session import build_spark
from profile_features.streaming import micro_batch
from profile_features.streaming.job import run_stream

config_path, kill_batch = sys.argv[1], int(sys.argv[2])
current = [None]
original_writer, original_process = micro_batch.online_writer, micro_batch.MicroBatch.process

def tracking(self, raw, batch_id, started):
    current[0] = batch_id
    return original_process(self, raw, batch_id, started)

def killing_writer(*args):
    write, kill, driver = original_writer(*args), current[0] == kill_batch, os.getpid()
    def killed(batches):
        for counts in write(batches):
            if kill:  # online rows written, the micro-batch not committed: kill the driver and its JVM
                os.killpg(os.getpgid(driver), signal.SIGKILL)
            yield counts
    return killed

micro_batch.online_writer = killing_writer
micro_batch.MicroBatch.process = tracking
config = load_config(config_path, [])
run_stream(build_spark(config.spark.model_copy(update={"master": "local[1]"})), config)
"""


def test_a_stream_killed_mid_write_resumes_with_no_loss_and_no_duplicate(tmp_path, pipeline_run, spark, streamed):
    """SIGKILL in micro-batch 1 after its offline file and its online write, before Spark commits it; the restart
    replays batch 1 and goes on: every event applied once, online values equal the clean run's."""
    import yaml

    config, data, repo, events = _setup(tmp_path, pipeline_run)
    _write_files(events, streamed["scenario"]["files"])
    config_path = tmp_path / "job.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_WRITE)
    process = subprocess.Popen([sys.executable, str(script), str(config_path), "1"], start_new_session=True)
    try:
        assert process.wait(timeout=600) == -signal.SIGKILL
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert (data / USER_STUDENT.name / f"run_date={STREAM_PARTITION}" / "batch-000000000001.parquet").exists()
    resumed = _run(config, spark)
    assert [b.batch_id for b in resumed.batches] == [1, 2]  # batch 1 replayed, batch 0 not
    events_table = pd.read_parquet(data / "stream" / "events")
    assert len(events_table) == 7  # file 3 repeats an event of file 1: kept as received, applied once
    assert not events_table.duplicated(["user_id", "item_id", "timestamp", "stream_batch"]).any()
    users = [streamed["scenario"]["known"], streamed["scenario"]["new"]]
    _assert_same_online(_online(repo, users), streamed["after"])


def test_an_older_value_never_overwrites_a_newer_one(streamed, spark):
    """A value online with a newer event time (a later batch materialize, say) stays; the stale row is counted."""
    from profile_features.streaming.online import write_partition

    s, repo = streamed["scenario"], str(streamed["repo"])
    rows = pd.read_parquet(streamed["data"] / USER_STUDENT.name / f"run_date={STREAM_PARTITION}")
    oldest = rows.sort_values("event_timestamp").groupby("user_id").first().reset_index()
    counts = write_partition(oldest.drop(columns=["run_date"], errors="ignore"), repo, None, "user_student")
    assert counts.to_dict("records") == [{"view": "user_student", "written": 0, "stale": 2}]
    _assert_same_online(_online(streamed["repo"], [s["known"], s["new"]]), streamed["after"])


def test_drifting_users_are_queued_within_the_hourly_budget(streamed, spark):
    """Threshold near zero: every touched user with a profile drifts. Two users in one hour with a budget of 1:
    only the more drifted is queued, once, though touched again; the queue folder is a refresh list."""
    from profile_features.freshness.refresh_plan import check_refresh_list

    data, s = streamed["data"], streamed["scenario"]
    stream = {**streamed["config"].stream.model_dump(), "drift_threshold": 1e-9, "refresh_budget_per_hour": 1}
    config = type(streamed["config"]).model_validate({**streamed["config"].model_dump(), "stream": stream})
    known, other = sorted(_newest(data, HISTORIES).user_id)[2:4]
    hour = (s["cutoff"] + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    events = Path(config.stream.source.path)
    _write_files(events, [[(known, s["items"][8], hour), (other, s["items"][8], hour)]], 3)
    _run(config, spark)  # one run per file: Spark orders files by modification time, which can tie
    _write_files(events, [[(other, s["items"][9], hour + timedelta(minutes=1))]], 4)
    _run(config, spark)
    rows = pd.read_parquet(data / USER_STUDENT.name / f"run_date={STREAM_PARTITION}")
    first = rows[rows.event_timestamp == pd.Timestamp(hour)].set_index("user_id").profile_drift
    queue = pd.read_parquet(data / "stream" / "profile_refresh_queue")
    assert list(queue.user_id) == [first.idxmax()]
    usable, rejects = check_refresh_list(queue, "queue")
    assert len(usable) == 1 and rejects.empty


def test_the_default_drift_threshold_is_the_snapshots_own_noise_floor(streamed):
    """Unset, the threshold is the 0.99 quantile of the snapshot's batch drifts (users scored on the history
    their profile was written from), the same for every micro-batch of that snapshot."""
    drifts = _newest(streamed["data"], USER_STUDENT).profile_drift.dropna().to_numpy()
    thresholds = {b.drift_threshold for b in streamed["result"].batches}
    assert len(thresholds) == 1 and streamed["config"].stream.drift_threshold is None
    (threshold,) = thresholds
    assert threshold in set(drifts.tolist())  # Spark's approxQuantile returns a value of the column
    assert np.quantile(drifts, 0.98) <= threshold <= drifts.max()


@pytest.mark.redis
def test_redis_online_store_gets_the_same_rows(tmp_path, pipeline_run, spark, streamed, redis_server):
    online_store = {"type": "redis", "connection_string": f"{redis_server['host']}:{redis_server['port']},db=3"}
    config, data, repo, events = _setup(tmp_path, pipeline_run, online_store)
    _write_files(events, streamed["scenario"]["files"])
    _run(config, spark)
    users = [streamed["scenario"]["known"], streamed["scenario"]["new"]]
    _assert_same_online(_online(repo, users), streamed["after"])


def test_a_forgotten_user_leaves_the_stream_and_stays_out(tmp_path, pipeline_run, spark, streamed):
    """`forget` reaches the stream's tables and the `run_date=stream` rows; the user's next events are rejects
    ("forgotten user", the id hashed) and never reach the online store again."""
    from profile_features.erasure import forget_users
    from tests.integration.test_forget import _id_hits

    config, data, repo, events = _setup(tmp_path, pipeline_run)
    s = streamed["scenario"]
    _write_files(events, s["files"][:1])
    _run(config, spark)
    assert _id_hits(data / "stream", s["new"]) and _online(repo, [s["new"]])["student_embedding"][0] is not None
    forget_users(config, [s["new"]], repo=repo, spark=spark)
    assert _id_hits(data, s["new"]) == []
    _write_files(events, [[(s["new"], s["items"][3], s["t"](50)), (s["known"], s["items"][3], s["t"](50))]], 1)
    result = _run(config, spark)
    assert result.summary()["rejected_by_reason"] == {"forgotten user": 1}
    assert _id_hits(data, s["new"]) == []
    assert _online(repo, [s["new"]])["student_embedding"][0] is None


def test_an_empty_csv_folder_needs_the_header_named(streamed, spark, tmp_path):
    """Columns are matched by the header: with no file to read it from and none configured, the stream refuses to
    start (rather than guess an order and shift columns), naming the folder and the setting."""
    from profile_features.streaming.job import start_stream
    from profile_features.validation import InputSchemaError

    empty = tmp_path / "incoming"
    empty.mkdir()
    stream = {**streamed["config"].stream.model_dump(), "source": {"path": str(empty)}}
    config = type(streamed["config"]).model_validate({**streamed["config"].model_dump(), "stream": stream})
    with pytest.raises(
        InputSchemaError,
        match=r"incoming: no CSV file there to read the event stream.s header from; set the source.s .header.",
    ):
        start_stream(spark, config)
