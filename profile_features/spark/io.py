"""Reading inputs and writing tables atomically through Hadoop's FileSystem API.

Atomic write: Spark writes into a staging directory beside the table, then the
staging directory is renamed into place under the table's lock (spark/commit.py).
A crashed job leaves only staging debris, never a half-written partition that Feast
or the next stage would read, and two jobs never mix their rows; `read_table` settles a
commit killed part way before it reads. Works on local disk and HDFS (rename is atomic
there); on object stores rename is a copy, so use a table format there (README, Guarantees).
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from profile_features.config import TableInput
from profile_features.validation import MALFORMED, NATIVE_MICROS, SOURCE_FILE, InputSchemaError

__all__ = ["read_input", "as_text_columns", "write_atomic", "read_table", "spark_schema", "path_exists"]


def spark_schema(schema: pa.Schema):
    """The Spark StructType of an Arrow schema (one source of truth for both)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def path_exists(spark, path: str) -> bool:
    from profile_features.spark.commit import HadoopFS

    return HadoopFS(spark).exists(path)


ID_COLUMNS = ("user_id", "item_id")


def _csv(spark, path: str, delimiter: str = ",", multi_line: bool | None = None):
    """RFC 4180 CSV, every column a string: quoted fields may span lines and escape quotes by
    doubling them; a row whose field count differs from the header keeps its raw text in
    `_malformed` (the classify functions reject it) instead of being shifted or padded.

    `multi_line` None: Spark's multi-line reader only where the line reader would read the input otherwise
    (`one_line_records`), since it reads each file in one task."""
    import csv

    from pyspark.sql.types import StringType, StructField, StructType

    first = spark.read.text(path).first()  # the header as written (Spark's own reader renames repeats)
    header = next(csv.reader([first.value], delimiter=delimiter), []) if first is not None else []
    if not any(c.strip() for c in header):
        raise InputSchemaError(f"{path}: no header row (an empty file or folder?)")
    names = [c.strip().lstrip("\ufeff").strip() for c in header]  # a BOM (Excel) would hide the first column
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise InputSchemaError(f"{path}: the header has the column(s) {repeated} more than once")
    schema = StructType([StructField(c, StringType()) for c in names] + [StructField(MALFORMED, StringType())])
    return (
        spark.read.schema(schema)
        .option("header", True)
        .option("sep", delimiter)
        .option("multiLine", not one_line_records(spark, path, delimiter) if multi_line is None else multi_line)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", MALFORMED)
        .csv(path)
    )


def _quoted_line(delimiter: str) -> str:
    """A Java regex for a line whose every field is quote-free or wholly quoted (`""` inside for a quote), an
    optional CR at its end: such a line closes every quote it opens, and holds no quote the parser takes as text."""
    sep = f"\\x{{{ord(delimiter):x}}}"
    field = f'(?:"(?:[^"]++|"")*+"|[^"{sep}\\r]*+)'  # quoted first: the possessive loops never revisit a choice
    return f"^{field}(?:{sep}{field})*+\\r?\\z"


# Hadoop's codecs whose files are read whole by one task (bzip2 splits)
_UNSPLITTABLE = (".gz", ".deflate", ".lz4", ".snappy", ".zst", ".xz")


def one_line_records(spark, path: str, delimiter: str = ",") -> bool:
    """True when every record of the CSV input at `path` is one line that Spark's line reader (which splits a file
    over many tasks) and its multi-line reader (one task a file, however large) read alike; one parallel scan of
    the raw lines (a second where LF and CRLF lines mix), split at LF only so every CR stays visible. Each file
    must hold:
    - quotes only in lines of quote-free or wholly quoted fields (`_quoted_line`): no quoted field runs past its
      line, and no quote taken as text could pair with one on another line;
    - CR only as the last character of a line, on every line of the file or on none (LF or CRLF files: the
      readers differ on a mix, on a lone CR and on CR-only line ends);
    - no line of whitespace and control characters alone (the line reader skips it; the multi-line reader
      reads it as a malformed row, which validation rejects with its text).
    Anything else is read by the multi-line reader, as every file was before. So is input whose every file is
    compressed by a codec that cannot be split (gzip, ...): either reader reads such a file in one task, and the
    scan would decompress it once more for nothing."""
    from pyspark.sql import functions as F

    lines = spark.read.option("lineSep", "\n").text(path)
    if all(f.lower().endswith(_UNSPLITTABLE) for f in lines.inputFiles()):
        return False
    line = F.col("value")
    cr = F.instr(line, "\r")
    odd = (
        (line.contains('"') & ~line.rlike(_quoted_line(delimiter)))
        | ((cr > 0) & (cr < F.length(line)))
        | ((F.ascii(line) <= 0x20) & line.rlike("^[\\x00-\\x20]*[\\x00-\\x0c\\x0e-\\x20][\\x00-\\x20]*$"))
    )
    counts = [
        F.count_if(odd).alias("odd"),
        F.count(F.lit(1)).alias("lines"),
        F.count_if(line.endswith("\r")).alias("crlf"),
    ]
    whole = lines.agg(*counts).first()
    if whole.odd or not whole.crlf or whole.crlf == whole.lines:
        return not whole.odd
    # LF and CRLF lines both: each file must keep to one (a second scan, only for such input)
    files = lines.groupBy(F.input_file_name()).agg(*counts)
    return files.where("crlf > 0 AND crlf < lines").limit(1).count() == 0


_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"


def _nanosecond_columns(path: str) -> set[str]:
    """Names of the TIMESTAMP(NANOS) columns of the dataset's first file (its footer, via pyarrow)."""
    import pyarrow.dataset as ds

    from profile_features import storage

    filesystem, local = storage.filesystem(path)
    schema = ds.dataset(local, filesystem=filesystem, format="parquet").schema
    return {f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"}


def _checked_read(spark, path: str):
    """`spark.read.parquet(path)`, an empty dataset reported naming the path."""
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(path)
    except AnalysisException as err:
        if "UNABLE_TO_INFER_SCHEMA" in str(err) or "Unable to infer schema" in str(err):
            raise InputSchemaError(f"{path}: no Parquet data to read (an empty folder or empty files?)") from err
        raise


def _read_parquet(spark, path: str):
    """(the dataset, its nanosecond-timestamp columns). Spark cannot read TIMESTAMP(NANOS), which
    pandas writes by default; those files are read with them as epoch-nanosecond longs instead."""
    from pyspark.errors import AnalysisException

    if spark.conf.get(_NANOS_AS_LONG, "false").lower() == "true":
        # An earlier read turned the setting on: Spark now reads nanoseconds as longs without a word, so the
        # footer says which columns those are. Unreadable here (no pyarrow filesystem for the scheme), they stay
        # epoch-nanosecond numbers, which validation reads right (slowly, in Python).
        try:
            nanos = _nanosecond_columns(path)
        except Exception:  # noqa: BLE001 - any footer failure: read as Spark reads it
            nanos = set()
        return _checked_read(spark, path), nanos
    try:
        return _checked_read(spark, path), set()
    except AnalysisException as err:
        if "NANOS" not in str(err):
            raise
    try:
        nanos = _nanosecond_columns(path)
    except Exception as err:  # no pyarrow filesystem for this scheme on the driver
        raise InputSchemaError(
            f"{path}: has nanosecond timestamps, which Spark cannot read, and its schema could not be read "
            f"({err}); write it with microsecond timestamps (pandas: to_parquet(..., coerce_timestamps='us'))"
        ) from err
    # Session-wide on purpose: the executors read with the session's settings when the query runs.
    spark.conf.set(_NANOS_AS_LONG, "true")
    return spark.read.parquet(path), nanos


def _parquet(spark, path: str):
    """Parquet with ids as strings or integers (a double id would read as '1.0E7'), timestamps as
    text with their offset (so the session time zone cannot shift them), everything else as text."""

    frame, nanos = _read_parquet(spark, path)
    return as_text_columns(frame, path, nanos)


def as_text_columns(frame, path: str, nanos: frozenset[str] | set[str] = frozenset()):
    """`frame` (a Parquet dataset, batch or stream) with every column as text the validation rules read; `nanos`:
    columns read as epoch nanoseconds. A timestamp column also keeps its instant as `_micros_<name>` (exact
    epoch microseconds), which validation's native path reads instead of parsing the text.
    Raises InputSchemaError naming `path` for a floating id column."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    columns, instants = [], []
    for field in frame.schema.fields:
        name, kind, col = field.name.strip(), field.dataType, F.col(f"`{field.name}`")
        if field.name in nanos:  # read as epoch nanoseconds (see _read_parquet)
            col, kind = F.expr(f"timestamp_micros(`{field.name}` div 1000)"), T.TimestampType()  # integer division
        if name in ID_COLUMNS and not (
            isinstance(kind, (T.StringType, T.IntegralType)) or (isinstance(kind, T.DecimalType) and kind.scale == 0)
        ):
            raise InputSchemaError(
                f"{path}: column {name!r} is {kind.simpleString()}; ids must be strings or integers "
                f"(cast it to int64 or string: a floating id such as 1.0 would not match 1)"
            )
        if isinstance(kind, T.TimestampType):  # an instant (NTZ would need the session zone: text only)
            instants.append(F.unix_micros(col).alias(f"{NATIVE_MICROS}{name}"))
        if isinstance(kind, (T.TimestampType, T.TimestampNTZType)):
            zone = "XXX" if isinstance(kind, T.TimestampType) else ""
            col = F.date_format(col, f"yyyy-MM-dd'T'HH:mm:ss.SSSSSS{zone}")
        columns.append(col.cast("string").alias(name))
    return frame.select(columns + instants)


def read_input(spark, table: TableInput, name: str):
    """Read a raw input table with every column as string, plus `_source_file` (and `_malformed`
    for CSV).

    Raises:
        FileNotFoundError: naming the path, when nothing is there.
        InputSchemaError: naming the path, for an empty CSV or an id column of another type.
    """
    from pyspark.sql import functions as F

    if not path_exists(spark, table.path):
        raise FileNotFoundError(f"{table.path}: {name} input not found")
    frame = _csv(spark, table.path, table.delimiter) if table.resolved_format == "csv" else _parquet(spark, table.path)
    frame = _renamed(frame, table)
    return frame.withColumn(SOURCE_FILE, F.input_file_name())


def _renamed(frame, table: TableInput):
    """Apply the input's column mapping (ours -> theirs)."""
    missing = [theirs for theirs in table.columns.values() if theirs not in frame.columns]
    if missing:
        raise InputSchemaError(
            f"{table.path}: columns {missing} named in the input's `columns` mapping are not in the file; "
            f"found {[c for c in frame.columns if not c.startswith('_')]}"
        )
    clashing = [ours for ours, theirs in table.columns.items() if ours in frame.columns and ours != theirs]
    frame = frame.drop(*clashing, *[NATIVE_MICROS + c for c in clashing])  # the mapped column replaces a same-named one
    for ours, theirs in table.columns.items():
        frame = frame.withColumnRenamed(theirs, ours).withColumnRenamed(NATIVE_MICROS + theirs, NATIVE_MICROS + ours)
    return frame


def read_table(spark, path: str, schema=None):
    """Read a table (or one `run_date=` partition) written by `write_atomic`.

    `schema` (an Arrow schema of the catalogue, for a folder without `run_date=` partitions below it) skips
    Spark's schema inference, a job that reads footers: what a stream's micro-batch saves on every read.

    A commit to the table killed part way is settled first (`commit.recover_table`): a stale lock is
    repaired, and a partition that a live commit has moved aside is waited for, so a killed writer
    never leaves readers without the partition.

    Raises:
        FileNotFoundError: naming the path, when nothing is there.
        commit.UnsafeLock: the table's lock names paths outside the table.
    """
    from profile_features.spark.commit import HadoopFS, recover_table

    fs = HadoopFS(spark)
    recover_table(fs, path)
    if not fs.exists(path):
        recover_table(fs, path)  # a live commit may have moved it aside since: wait for its move
        if not fs.exists(path):
            raise FileNotFoundError(f"{path}: table not found (did the previous stage run?)")
    if schema is None:
        return spark.read.parquet(path)
    from profile_features.spark.common import ddl

    return spark.read.schema(ddl(schema)).parquet(path)


def write_atomic(frame, target: str) -> str:
    """Write `frame` as Parquet to `target` (a table, or one snapshot partition of it: `Snapshot.path`), atomically.

    Spark writes to a staging directory beside the table; `commit.commit_directory` then moves it
    into place under the table's lock: concurrent jobs are serialised (the last to commit wins,
    whole), and a job killed mid-commit is repaired by the next writer. Re-writing a partition
    replaces that partition only.

    Returns:
        The directory that now holds the data.
    """
    from profile_features.spark.commit import HadoopFS, commit_directory, table_paths

    target = target.rstrip("/")
    # Staging lives beside the table, not in it, so readers of the table directory never see it.
    table = table_paths(target)
    staging = f"{table.staging_dir}/{table.name}-{uuid.uuid4().hex}"
    frame.write.mode("error").parquet(staging)
    commit_directory(HadoopFS(frame.sparkSession), staging, target, lock=table.lock)
    return target
