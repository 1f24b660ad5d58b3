"""SparkSession construction: the settings every job relies on, and nothing that is the user's.

Under spark-submit (the driver then talks to a gateway spark-submit started) the master,
executor resources, Python interpreter and log level are spark-submit's: only the
correctness settings below are added, and only where the user did not set them. A plain
`python` run (the demo, the tests, `profile-features evaluate`) has no spark-submit, so it
gets a local session and the workers run the driver's interpreter.
"""

from __future__ import annotations

import os
import sys

from profile_features.config import SparkConfig

__all__ = ["build_spark", "under_spark_submit", "JOB_DEFAULTS", "LOCAL_DEFAULTS"]

JOB_DEFAULTS = {
    # Timestamps are UTC everywhere and written as microseconds (Spark 4 and
    # Feast both read them; INT96 and nanoseconds cause trouble).
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # No _SUCCESS marker: readers of the directory (DuckDB via Feast) would trip on it.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.summary.metadata.level": "NONE",
}
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
}


def under_spark_submit() -> bool:
    """True when spark-submit launched this driver (it hands the driver a running JVM gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(config: SparkConfig):
    """Get or create the session.

    `config.master` wins when set; otherwise spark-submit's --master, or local[*] for a plain
    `python` run. Settings the user passed (--conf, spark-defaults.conf) are never overridden.
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    submitted = under_spark_submit()
    if not submitted:
        # Local workers must run the driver's interpreter (and virtualenv).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    master = config.master or (None if submitted else "local[*]")
    settings = dict(JOB_DEFAULTS)
    if master and master.startswith("local"):
        settings.update(LOCAL_DEFAULTS)
    given = dict(SparkConf().getAll()) if submitted else {}  # what spark-submit and spark-defaults set
    settings = {k: v for k, v in settings.items() if k not in given}
    settings.update(config.conf)
    builder = SparkSession.builder.appName(config.app_name)
    if master:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if config.log_level:
        spark.sparkContext.setLogLevel(config.log_level)
    return spark
