"""What every Spark stage shares: DDL of our schemas, run summaries, the snapshot a run is for, threads per task."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from profile_features import storage
from profile_features.catalogue import RUN_DATE, RUNS, STREAM_PARTITION, DataDir, Snapshot, Table
from profile_features.config import JobConfig
from profile_features.spark.io import read_table, spark_schema

__all__ = ["ddl", "write_summary", "newest_run_date", "resolve_snapshot", "threads_per_task", "in_every_task_slot"]


def ddl(schema, tail=()) -> str:
    fields = [f"`{f.name}` {f.dataType.simpleString()}" for f in spark_schema(schema).fields]
    return ", ".join(fields + [f"`{name}` {kind}" for name, kind in tail])


def write_summary(config: JobConfig, job: str, summary: dict) -> dict:
    """`<data_dir>/runs/<job>-<UTC stamp>.json` (any storage URI); returns `summary`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    storage.write_json(storage.join(DataDir(config.data_dir).root(RUNS), f"{job}-{stamp}.json"), summary)
    return summary


def newest_run_date(spark, table_root: str) -> str:
    """The newest snapshot partition of a table (read through Spark, so any storage URI works)."""
    from pyspark.sql import functions as F

    run_date = F.col(RUN_DATE).cast("string")
    row = read_table(spark, table_root).where(run_date != STREAM_PARTITION).select(F.max(run_date).alias("d")).first()
    if row is None or row.d is None:
        raise FileNotFoundError(f"{table_root}: no {RUN_DATE} partitions")
    return row.d


def resolve_snapshot(spark, config: JobConfig, upstream: Table | None) -> Snapshot:
    """The snapshot a stage run by hand is for, decided once, before the stage starts.

    `history.cutoff` when the config (or `--set`) gives one; else, for a stage that cuts a new snapshot
    (`upstream` None: build_histories), now (UTC, whole seconds); else the newest partition of the
    stage's upstream table (what the previous stage wrote last).
    """
    if config.history.cutoff is not None:
        return Snapshot(config.data_dir, config.history.cutoff)
    if upstream is None:
        return Snapshot(config.data_dir, datetime.now(timezone.utc).replace(microsecond=0))
    return Snapshot(config.data_dir, newest_run_date(spark, DataDir(config.data_dir).root(upstream)))


def threads_per_task(spark, configured: int | None = None, concurrent_tasks: int | None = None) -> int:
    """Torch threads for one Python worker, so concurrent tasks do not oversubscribe the cores.

    `configured` wins. On a cluster each task owns `spark.task.cpus` cores of its executor; in
    local mode the machine's cores are shared by the tasks that run at once (`concurrent_tasks`,
    at most the default parallelism).
    """
    if configured:
        return configured
    conf = spark.sparkContext.getConf()
    if not (conf.get("spark.master") or "local").startswith("local"):
        return max(1, int(conf.get("spark.task.cpus") or 1))
    slots = max(1, spark.sparkContext.defaultParallelism)
    running = min(slots, concurrent_tasks) if concurrent_tasks else slots
    return max(1, (os.cpu_count() or 1) // max(1, running))


def in_every_task_slot(spark, load, schema: str):
    """`load()` run once in a Python worker per task slot, so what it caches per worker (a model, a store) is there
    for the tasks after it (Spark reuses its workers). A pandas frame with a row per slot: `pid` and the dict
    `load` returned, whose fields `schema` (DDL) names."""
    slots = spark.sparkContext.defaultParallelism

    def each(batches):
        import pandas as pd

        for _ in batches:
            yield pd.DataFrame([{"pid": os.getpid(), **load()}])

    return spark.range(slots, numPartitions=slots).mapInPandas(each, f"pid long, {schema}").toPandas()
