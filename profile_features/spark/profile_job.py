"""The profile stage in Spark: histories of a snapshot -> profiles."""

from __future__ import annotations

from profile_features import schemas
from profile_features.config import JobConfig
from profile_features.profiles.stage import generate_profiles, make_generator
from profile_features.spark.io import read_table, write_atomic
from profile_features.spark.stages import ddl, run_date_for, write_summary

__all__ = ["run_profiles"]


def run_profiles(spark, config: JobConfig) -> dict:
    """Write one profile per history of the snapshot with the configured generator."""
    run_date = run_date_for(spark, config, "histories")
    histories = read_table(spark, f"{config.table_path('histories')}/run_date={run_date}")
    profile_config = config.profile

    def partition(batches):
        generator = make_generator(profile_config)  # once per partition, on the worker
        for batch in batches:
            yield generate_profiles(batch, generator)

    profiles = histories.mapInPandas(partition, schema=ddl(schemas.PROFILES))
    path = write_atomic(profiles, config.table_path("profiles"), run_date)
    written = read_table(spark, path)
    summary = {
        "job": "profiles", "run_date": run_date, "output": path, "histories": histories.count(),
        "profiles": written.count(), "generator": profile_config.generator,
    }
    return write_summary(config, "profiles", summary)
