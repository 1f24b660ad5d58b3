"""SparkSession construction: the settings every job relies on, and nothing that is the user's.

Under spark-submit (the driver then talks to a gateway spark-submit started) the master,
executor resources and Python interpreter are spark-submit's: only the correctness settings
below are added, and only where the user did not set them. A plain `python` run (the demo,
the tests, `profile-features evaluate`) has no spark-submit, so it gets a local session and the
workers run the driver's interpreter.

Logging: Spark's default log4j2 profile logs at INFO (tens of thousands of lines per job under
spark-submit). Where nobody configured log4j2 (no -Dlog4j2.configurationFile, no
log4j2.properties in SPARK_CONF_DIR), the JVM gets LOG4J2_PROPERTIES: warnings and errors only.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from profile_features.config import SparkConfig
from profile_features.spark.streams import under_spark_submit

__all__ = [
    "build_spark",
    "under_spark_submit",
    "JOB_DEFAULTS",
    "LOCAL_DEFAULTS",
    "LOG4J2_PROPERTIES",
    "quiet_jvm_logging",
    "ignored_launch_settings",
]

log = logging.getLogger(__name__)

LOG4J2_PROPERTIES = Path(__file__).with_name("log4j2.properties")
# Where Spark keeps its own default profiles (inside its jar): a JVM still on one of them is ours to quiet.
_SPARK_DEFAULT_PROFILE = "org/apache/spark/log4j2-"

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


# Read when the driver JVM starts: under spark-submit it has started before the job reads its config, so these
# take effect only as spark-submit options.
LAUNCH_FLAGS = {
    "spark.driver.memory": "--driver-memory",
    "spark.driver.cores": "--driver-cores",
    "spark.driver.extraJavaOptions": "--driver-java-options",
    "spark.driver.extraClassPath": "--driver-class-path",
    "spark.driver.extraLibraryPath": "--driver-library-path",
}


def ignored_launch_settings(conf: dict[str, str], submitted: bool, given: dict[str, str]) -> list[str]:
    """One message per `spark.conf` setting that cannot reach a driver spark-submit already launched
    (`given`: what spark-submit set), naming the spark-submit option that would."""
    if not submitted:
        return []
    return [
        f"spark.conf.{key}={value} cannot take effect under spark-submit (the driver JVM is already running"
        f"{', with ' + given[key] if key in given else ''}): pass {flag} {value} to spark-submit instead"
        for key, flag in LAUNCH_FLAGS.items()
        if (value := conf.get(key)) is not None and given.get(key) != value
    ]


def _user_log4j_config(java_options: str) -> bool:
    """True when the user chose a log4j2 configuration for a JVM we are about to start."""
    if "log4j" in java_options or "log4j" in os.environ.get("JAVA_TOOL_OPTIONS", ""):
        return True
    conf_dir = os.environ.get("SPARK_CONF_DIR") or (
        os.path.join(os.environ["SPARK_HOME"], "conf") if os.environ.get("SPARK_HOME") else None
    )
    return bool(conf_dir) and any(
        os.path.exists(os.path.join(conf_dir, name)) for name in ("log4j2.properties", "log4j2.xml")
    )


def _profile_uri() -> str:
    """LOG4J2_PROPERTIES as a file URI; when the package runs from a zip (spark-submit --py-files),
    a copy in the temporary folder, since the JVM reads files, not zip members."""
    if LOG4J2_PROPERTIES.is_file():
        return LOG4J2_PROPERTIES.as_uri()
    import hashlib
    import tempfile
    from importlib import resources

    text = resources.files(__package__).joinpath(LOG4J2_PROPERTIES.name).read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"profile-features-log4j2-{digest}.properties"
    if not copy.exists():
        partial = copy.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, copy)
    return copy.as_uri()


def quiet_jvm_logging(jvm) -> bool:
    """Point a running JVM's log4j2 at LOG4J2_PROPERTIES when it still runs Spark's default
    profile (or none); a configuration the user chose is kept. Returns whether it was applied."""
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    location = context.getConfigLocation()
    if location is not None and _SPARK_DEFAULT_PROFILE not in location.toString():
        return False
    context.setConfigLocation(jvm.java.net.URI(_profile_uri()))
    # spark-submit remembers that it loaded its default profile and loads it again when the context
    # starts (Logging.initializeLogging); forget that, or ours lasts until SparkContext's first line.
    try:
        spark_logging = getattr(getattr(jvm.org.apache.spark.internal, "Logging$"), "MODULE$")
        getattr(spark_logging, "org$apache$spark$internal$Logging$$defaultSparkLog4jConfig_$eq")(False)
    except Exception as err:  # noqa: BLE001 - a Spark without that field: reapplied after start, see build_spark
        log.debug("could not keep Spark from reloading its log4j2 defaults: %s", err)
    return True


def build_spark(config: SparkConfig):
    """Get or create the session.

    `config.master` wins when set; otherwise spark-submit's --master, or local[*] for a plain
    `python` run. Settings the user passed (--conf, spark-defaults.conf) are never overridden.
    """
    from pyspark import SparkConf, SparkContext
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
    for message in ignored_launch_settings(config.conf, submitted, given):
        log.warning(message)
    if submitted:
        # The JVM is spark-submit's and already running: reconfigure it before the context logs its start.
        SparkContext._ensure_initialized()
        quiet_jvm_logging(SparkContext._jvm)
    elif SparkContext._jvm is None:  # a JVM we start: name the file on its command line
        options = settings.get("spark.driver.extraJavaOptions", "")
        if not _user_log4j_config(options):
            ours = f"-Dlog4j2.configurationFile={_profile_uri()}"
            settings["spark.driver.extraJavaOptions"] = f"{options} {ours}".strip()
    builder = SparkSession.builder.appName(config.app_name)
    if master:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if submitted:
        quiet_jvm_logging(spark.sparkContext._jvm)  # a no-op unless Spark reloaded its defaults while starting
    if config.log_level:
        spark.sparkContext.setLogLevel(config.log_level)
    return spark


if __name__ == "__main__":  # `python -m profile_features.spark.session`: the profile's URI, for --driver-java-options
    print(_profile_uri())
