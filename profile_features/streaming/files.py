"""One Parquet file per micro-batch and table, named after the micro-batch, so a replay rewrites it whole."""

from __future__ import annotations

import uuid

from profile_features import storage
from profile_features.catalogue import STAGING, DataDir
from profile_features.spark.commit import HadoopFS

__all__ = ["batch_file_name", "has_batch_files", "rows_in", "write_batch_file"]


def batch_file_name(batch_id: int) -> str:
    return f"batch-{batch_id:012d}.parquet"


def write_batch_file(frame, data_dir: str, folder: str, batch_id: int) -> str:
    """Write `frame` as the single file `folder/batch-<id>.parquet` (replacing it); returns its path.

    Spark writes one part file to staging under `data_dir`; it is renamed into place, so a reader lists
    either no file for the batch or the whole one (on HDFS and local disks: rename is atomic there; an
    object store copies). A single file, not a folder, so the table's root stays flat for every reader.
    """
    fs = HadoopFS(frame.sparkSession)
    scratch = storage.join(DataDir(data_dir).root(STAGING), f"stream-{uuid.uuid4().hex}")
    frame.coalesce(1).write.mode("overwrite").parquet(scratch)
    parts = [n for n in fs.list_names(scratch) if n.startswith("part-") and n.endswith(".parquet")]
    target = storage.join(folder, batch_file_name(batch_id))
    fs.mkdirs(folder)
    if fs.exists(target):
        fs.delete(target)
    if parts:  # Spark writes a schema-only part for an empty frame too
        fs.rename(storage.join(scratch, parts[0]), target)
    fs.delete(scratch)
    return target


def rows_in(spark, path: str) -> int:
    """Rows of the single Parquet file `path` (0 when it is not there), from its footer on the driver: no Spark
    job. A scheme pyarrow cannot open here (e.g. HDFS without libhdfs) is counted by Spark instead."""
    import pyarrow.parquet as pq

    try:
        filesystem, inner = storage.filesystem(path)
        with filesystem.open_input_file(inner) as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except FileNotFoundError:
        return 0
    except Exception:  # noqa: BLE001 - no pyarrow filesystem for the scheme: Spark reads it as the writer did
        fs = HadoopFS(spark)
        return spark.read.parquet(path).count() if fs.exists(path) else 0


def has_batch_files(spark, root: str) -> bool:
    """Whether the folder `root` holds any Parquet file (Spark cannot read an empty or absent one)."""
    return any(n.endswith(".parquet") for n in HadoopFS(spark).list_names(root))
