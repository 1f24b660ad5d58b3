"""Reading inputs and writing tables atomically through Hadoop's FileSystem API.

Atomic write: Spark writes into a staging directory beside the table, then the
staging directory is renamed into place. A crashed job leaves only staging
debris, never a half-written partition that Feast or the next stage would read.
Works on local disk and HDFS (rename is atomic there); on object stores rename
is a copy, so use a table format there.
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from profile_features.config import TableInput
from profile_features.validation import SOURCE_FILE

__all__ = ["read_input", "write_atomic", "read_table", "spark_schema", "path_exists"]


def spark_schema(schema: pa.Schema):
    """The Spark StructType of an Arrow schema (one source of truth for both)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _fs(spark, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path, jvm


def path_exists(spark, path: str) -> bool:
    fs, hadoop_path, _ = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


def read_input(spark, table: TableInput, name: str):
    """Read a raw input table with every column as string, plus `_source_file`.

    Raises:
        FileNotFoundError: naming the path, when nothing is there.
    """
    from pyspark.sql import functions as F

    if not path_exists(spark, table.path):
        raise FileNotFoundError(f"{table.path}: {name} input not found")
    if table.resolved_format == "csv":
        frame = spark.read.option("header", True).option("inferSchema", False).csv(table.path)
    else:
        frame = spark.read.parquet(table.path)
    frame = frame.select([F.col(f"`{c}`").cast("string").alias(c.strip()) for c in frame.columns])
    return frame.withColumn(SOURCE_FILE, F.input_file_name())


def read_table(spark, path: str):
    if not path_exists(spark, path):
        raise FileNotFoundError(f"{path}: table not found (did the previous stage run?)")
    return spark.read.parquet(path)


def write_atomic(frame, path: str, run_date: str | None = None) -> str:
    """Write `frame` as Parquet to `path` (or its `run_date=` partition), atomically.

    Re-running with the same `run_date` replaces that partition only.

    Returns:
        The directory that now holds the data.
    """
    spark = frame.sparkSession
    path = path.rstrip("/")
    target = f"{path}/run_date={run_date}" if run_date else path
    # Staging lives beside the table, not in it, so readers of the table directory
    # never see it.
    table_parent, table_name = path.rsplit("/", 1)
    staging_dir = f"{table_parent}/_staging"
    staging = f"{staging_dir}/{table_name}-{uuid.uuid4().hex}"
    frame.write.mode("error").parquet(staging)
    fs, target_path, jvm = _fs(spark, target)
    old = jvm.org.apache.hadoop.fs.Path(f"{staging_dir}/{table_name}-replaced-{uuid.uuid4().hex}")
    had_old = fs.exists(target_path)
    if had_old and not fs.rename(target_path, old):
        raise OSError(f"could not move {target} aside")
    fs.mkdirs(target_path.getParent())
    if not fs.rename(jvm.org.apache.hadoop.fs.Path(staging), target_path):
        if had_old:
            fs.rename(old, target_path)
        raise OSError(f"could not commit {staging} to {target}")
    if had_old:
        fs.delete(old, True)
    return target
