"""SparkSession construction with the settings every job relies on."""

from __future__ import annotations

import os
import sys

from profile_features.config import SparkConfig

__all__ = ["build_spark", "JOB_DEFAULTS"]

JOB_DEFAULTS = {
    # Timestamps are UTC everywhere and written as microseconds (Spark 4 and
    # Feast both read them; INT96 and nanoseconds cause trouble).
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # No _SUCCESS marker: readers of the directory (DuckDB via Feast) would trip on it.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.summary.metadata.level": "NONE",
    "spark.ui.showConsoleProgress": "false",
}
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
}


def build_spark(config: SparkConfig):
    """Get or create the session. Under spark-submit, `config.master` None defers to it."""
    from pyspark.sql import SparkSession

    # Workers must run the same interpreter (and virtualenv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(config.app_name)
    settings = dict(JOB_DEFAULTS)
    if config.master:
        builder = builder.master(config.master)
        if config.master.startswith("local"):
            settings.update(LOCAL_DEFAULTS)
    settings.update(config.conf)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
