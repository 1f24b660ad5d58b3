"""One micro-batch of the stream, start to end (Spark's `foreachBatch` calls `MicroBatch.__call__`).

validate (the batch rules, tombstones) -> events and rejects files -> touched users' histories ->
student scores -> `user_student` file in the table's stream partition -> Feast online store -> refresh queue.
Every write is the file of this micro-batch, so Spark's replay of a batch after a crash rewrites it whole.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from profile_features import schemas, storage
from profile_features.catalogue import (
    HISTORIES,
    PROFILE_REFRESH_QUEUE,
    STREAM_EVENTS,
    STREAM_PARTITION,
    STREAM_REJECTS,
    USER_PROFILE_EMBEDDINGS,
    USER_STUDENT,
    DataDir,
    Snapshot,
)
from profile_features.config import JobConfig
from profile_features.spark.commit import HadoopFS
from profile_features.spark.common import ddl, in_every_task_slot, threads_per_task
from profile_features.spark.io import read_table
from profile_features.spark.student_job import checkpoint_dir
from profile_features.spark.validate_rules import classified_interactions
from profile_features.streaming.files import batch_file_name, has_batch_files, rows_in, write_batch_file
from profile_features.streaming.histories import touched_histories
from profile_features.streaming.items import known_items
from profile_features.streaming.online import ONLINE_COUNTS, online_writer
from profile_features.streaming.refresh_queue import to_queue
from profile_features.tombstones import reject_forgotten

__all__ = ["BatchCounts", "MicroBatch", "newest_snapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchCounts:
    batch_id: int
    run_date: str
    read: int
    accepted: int
    rejected_by_reason: dict[str, int]
    users_touched: int
    users_scored: int
    online_written: int
    online_stale: int  # rows older than the value already online: not written
    queued_for_refresh: int
    drift_threshold: float | None  # what queued them (None: the snapshot has no drift to set it by)
    seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)  # where the batch's time went, in order

    def summary(self) -> dict:
        return dict(self.__dict__)


def newest_snapshot(data_dir: str) -> tuple[Snapshot, datetime] | None:
    """The newest snapshot with histories, and its cutoff (the histories' event time); None before any."""
    run_dates = DataDir(data_dir).run_dates(HISTORIES)
    if not run_dates:
        return None
    import pyarrow.dataset as ds

    from profile_features import storage

    snapshot = Snapshot(data_dir, run_dates[-1])
    filesystem, path = storage.filesystem(snapshot.path(HISTORIES))
    table = ds.dataset(path, filesystem=filesystem, format="parquet").head(1, columns=["event_timestamp"])
    cutoff = table.column(0)[0].as_py() if table.num_rows else None
    return snapshot, cutoff


@dataclass
class MicroBatch:
    """The `foreachBatch` function of the stream; keeps each batch's counts for the job's summary."""

    config: JobConfig
    batches: list[BatchCounts] = field(default_factory=list)
    _thresholds: dict[str, float | None] = field(default_factory=dict)  # per snapshot run date

    def __call__(self, raw, batch_id: int) -> None:
        started = time.monotonic()
        counts = self.process(raw, int(batch_id), started)
        self.batches.append(counts)
        log.info(
            "stream batch %d: %d events, %d accepted, %d users scored, %d online (%d stale), %d queued, %.1fs",
            counts.batch_id, counts.read, counts.accepted, counts.users_scored, counts.online_written,
            counts.online_stale, counts.queued_for_refresh, counts.seconds,
        )  # fmt: skip

    def warm_up(self, spark) -> pd.DataFrame:
        """Start a Python worker in every task slot with the student checkpoint loaded and the Feast store open (both
        cached per worker, and Spark reuses its workers): otherwise the first micro-batch after every start pays
        them, several seconds of its events' latency (BENCHMARKS.md). Returns what each slot loaded (pid,
        checkpoint version, Feast project); an unknown view fails here, before any event is read."""
        found = newest_snapshot(self.config.data_dir)
        if found is None:
            return pd.DataFrame(columns=["pid", "checkpoint", "project"])
        stream, path, threads = self.config.stream, checkpoint_dir(self.config, found[0]), threads_per_task(spark)

        def load() -> dict:
            from profile_features.streaming.online import opened_project
            from profile_features.student.scoring import load_student

            project = None
            if stream.online:
                project = opened_project(stream.feature_repo, stream.feature_store_yaml, [stream.user_view])
            return {"checkpoint": load_student(path, num_threads=threads).checkpoint_id, "project": project}

        return in_every_task_slot(spark, load, "checkpoint string, project string")

    def process(self, raw, batch_id: int, started: float) -> BatchCounts:
        """Every read names its schema (no inference job) and every count comes from an aggregation the batch
        runs anyway or from a written file's footer: a micro-batch's time is mostly its number of Spark jobs."""
        from pyspark.sql import functions as F

        spark, config, data = raw.sparkSession, self.config, DataDir(self.config.data_dir)
        found = newest_snapshot(config.data_dir)
        if found is None:
            raise FileNotFoundError(f"{data.root(HISTORIES)}: no snapshot yet; run the batch pipeline first")
        snapshot, cutoff = found
        clock = _PhaseClock()
        raw = raw.persist()
        read = raw.count()
        items = known_items(spark, config.data_dir)  # the validated catalogue and the items streamed since
        classified = reject_forgotten(
            classified_interactions(
                raw, items, config.inputs.rules if config.inputs else _default_rules(), spread=False
            ),
            config.data_dir,
        ).persist()
        by_reason, users_touched = {}, 0
        verdicts = classified.groupBy("reject_reason").agg(
            F.count(F.lit(1)).alias("n"), F.countDistinct("user_id").alias("users")
        )
        for row in verdicts.collect():
            by_reason[row.reject_reason] = row.n
            users_touched = row.users if row.reject_reason is None else users_touched
        accepted_count = by_reason.pop(None, 0)
        if read != accepted_count + sum(by_reason.values()):  # rows vanished or were doubled: write nothing
            raise RuntimeError(f"stream batch {batch_id}: read {read} events but accounted for {accepted_count}")
        batch = F.lit(batch_id).cast("long").alias("stream_batch")
        accepted = classified.where("reject_reason IS NULL").select(*schemas.INTERACTIONS.names, batch)
        rejects = (
            classified.where("reject_reason IS NOT NULL")
            .selectExpr("'stream' AS table", "source_file", "reject_reason AS reason", "record")
            .select("*", batch)
        )
        clock.lap("validate")
        if by_reason:
            write_batch_file(rejects, config.data_dir, data.root(STREAM_REJECTS), batch_id)
        events_file = write_batch_file(accepted, config.data_dir, data.root(STREAM_EVENTS), batch_id)
        classified.unpersist()
        raw.unpersist()
        clock.lap("write_events")

        events = read_table(spark, data.root(STREAM_EVENTS), schemas.STREAM_EVENTS)
        this_batch = spark.read.schema(ddl(schemas.STREAM_EVENTS)).parquet(events_file)  # the file, not the table
        touched = this_batch.select("user_id").distinct()
        histories = touched_histories(
            touched,
            read_table(spark, snapshot.path(HISTORIES), schemas.HISTORIES),
            events.where(F.col("stream_batch") <= batch_id),
            cutoff,
            config.history.max_length,
        )
        scored_path = write_batch_file(
            self._scored(spark, histories, snapshot),
            config.data_dir,
            data.partition(USER_STUDENT, STREAM_PARTITION),
            batch_id,
        )
        scored = spark.read.schema(ddl(schemas.USER_STUDENT)).parquet(scored_path)
        users_scored = rows_in(spark, scored_path)
        clock.lap("histories_and_score")
        written = stale = 0
        if config.stream.online and users_scored:
            stream = config.stream
            counts = scored.repartition(max(1, min(spark.sparkContext.defaultParallelism, 4))).mapInPandas(
                online_writer(stream.feature_repo, stream.feature_store_yaml, [stream.user_view]), ONLINE_COUNTS
            )
            for row in counts.collect():
                written, stale = written + row.written, stale + row.stale
        clock.lap("online")
        threshold = self._drift_threshold(spark, snapshot)
        queued = self._queue(spark, scored, cutoff, batch_id, threshold)
        clock.lap("refresh_queue")
        return BatchCounts(
            batch_id=batch_id,
            run_date=snapshot.run_date,
            read=read,
            accepted=accepted_count,
            rejected_by_reason=by_reason,
            users_touched=users_touched,
            users_scored=users_scored,
            online_written=written,
            online_stale=stale,
            queued_for_refresh=queued,
            drift_threshold=threshold,
            seconds=round(time.monotonic() - started, 3),
            phase_seconds=clock.laps,
        )

    def _drift_threshold(self, spark, snapshot: Snapshot) -> float | None:
        """`stream.drift_threshold`, or the `drift_quantile` of the snapshot's batch drifts (computed once per
        snapshot: one pass over its `user_student`); None when the snapshot has no drift (no profiles or no
        profile head): nobody is queued."""
        from pyspark.sql import functions as F

        stream = self.config.stream
        if stream.drift_threshold is not None:
            return stream.drift_threshold
        if snapshot.run_date not in self._thresholds:
            drift = F.col("profile_drift")
            drifts = read_table(spark, snapshot.path(USER_STUDENT), schemas.USER_STUDENT).where(
                drift.isNotNull() & ~F.isnan(drift)
            )
            found = drifts.approxQuantile("profile_drift", [stream.drift_quantile], 0.001)
            self._thresholds[snapshot.run_date] = float(found[0]) if found else None
            log.info("stream: drift threshold %s (%s quantile of %s)", found, stream.drift_quantile, snapshot.run_date)
        return self._thresholds[snapshot.run_date]

    def _queue(self, spark, scored, cutoff, batch_id: int, threshold: float | None) -> int:
        """Add this micro-batch's drifting users to the refresh queue; how many were queued. A batch in which
        nobody drifts past the threshold (the usual one) reads nothing more and writes no file."""
        from pyspark.sql import functions as F

        config, data = self.config, DataDir(self.config.data_dir)
        queue_root = data.root(PROFILE_REFRESH_QUEUE)
        drift = F.col("profile_drift")
        if threshold is None or not scored.where(drift.isNotNull() & ~F.isnan(drift) & (drift > threshold)).take(1):
            HadoopFS(spark).delete(storage.join(queue_root, batch_file_name(batch_id)))  # a replay's earlier file
            return 0
        queued_before = (
            read_table(spark, queue_root, schemas.PROFILE_REFRESH_QUEUE) if has_batch_files(spark, queue_root) else None
        )
        queue = to_queue(
            scored,
            queued_before,
            cutoff,
            threshold,
            config.stream.refresh_budget_per_hour,
            batch_id,
        )
        return rows_in(spark, write_batch_file(queue, config.data_dir, queue_root, batch_id))

    def _scored(self, spark, histories, snapshot: Snapshot):
        """USER_STUDENT rows for `histories`, scored with the snapshot's checkpoint (loaded once per worker)."""
        profiles = read_table(spark, snapshot.path(USER_PROFILE_EMBEDDINGS), schemas.USER_PROFILE_EMBEDDINGS)
        users = histories.join(profiles.select("user_id", "profile_embedding"), "user_id", "left")
        path, batch_size = checkpoint_dir(self.config, snapshot), self.config.student.batch_size
        threads = threads_per_task(spark)

        def partition(batches):
            from profile_features.student.scoring import load_student, score_users

            model = load_student(path, num_threads=threads)
            for frame in batches:
                out = score_users(frame, model, batch_size=batch_size)
                out.insert(1, "event_timestamp", pd.Series(frame["event_timestamp"].to_numpy()))
                yield out

        return users.mapInPandas(partition, schema=ddl(schemas.USER_STUDENT))


class _PhaseClock:
    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _default_rules():
    from profile_features.config import InputRules

    return InputRules()
