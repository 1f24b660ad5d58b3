"""What every Spark stage shares: DDL of our schemas, run summaries, snapshot dates, threads per task."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from profile_features import storage
from profile_features.config import JobConfig
from profile_features.spark.io import read_table, spark_schema

__all__ = ["ddl", "write_summary", "resolve_cutoff", "latest_run_date", "run_date_for", "threads_per_task"]


def ddl(schema, tail=()) -> str:
    fields = [f"`{f.name}` {f.dataType.simpleString()}" for f in spark_schema(schema).fields]
    return ", ".join(fields + [f"`{name}` {kind}" for name, kind in tail])


def write_summary(config: JobConfig, job: str, summary: dict) -> dict:
    """`<data_dir>/runs/<job>-<UTC stamp>.json` (any storage URI); returns `summary`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    storage.write_json(storage.join(config.table_path("runs"), f"{job}-{stamp}.json"), summary)
    return summary


def resolve_cutoff(config: JobConfig) -> datetime:
    """The snapshot cutoff: the configured one, else now (UTC, whole seconds)."""
    return config.history.cutoff or datetime.now(timezone.utc).replace(microsecond=0)


def latest_run_date(spark, path: str) -> str:
    """The newest `run_date=` partition of a table."""
    from pyspark.sql import functions as F

    row = read_table(spark, path).select(F.max("run_date").cast("string").alias("d")).first()
    if row is None or row.d is None:
        raise FileNotFoundError(f"{path}: no run_date partitions")
    return row.d


def run_date_for(spark, config: JobConfig, upstream: str) -> str:
    if config.history.cutoff is not None:
        return config.history.cutoff.date().isoformat()
    return latest_run_date(spark, config.table_path(upstream))


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
