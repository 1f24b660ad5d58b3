"""The raw streams: every column as text plus `_source_file` (and `_malformed`), as validation reads it.

Events carry the interactions' columns; the item stream the catalogue's, and `_arrived` (the file's
modification time, or Kafka's record time): streamed item rows have no time of their own.
"""

from __future__ import annotations

from profile_features.config import StreamSource
from profile_features.spark.io import _renamed, as_text_columns
from profile_features.validation import (
    INTERACTION_OPTIONAL,
    INTERACTION_REQUIRED,
    ITEM_OPTIONAL,
    ITEM_REQUIRED,
    MALFORMED,
    NATIVE_MICROS,
    SOURCE_FILE,
    InputSchemaError,
)

__all__ = ["ARRIVED", "read_event_stream", "read_item_stream", "file_columns"]

ARRIVED = "_arrived"  # when an item row arrived: its file's modification time, or Kafka's record time


def file_columns(source: StreamSource, columns=(*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL)) -> list[str]:
    """The columns the rows carry, under the source's names (`columns` maps ours to theirs)."""
    return [source.columns.get(c, c) for c in columns]


def _string_schema(names, malformed: bool):
    from pyspark.sql.types import StringType, StructField, StructType

    fields = [StructField(n, StringType()) for n in names]
    return StructType(fields + ([StructField(MALFORMED, StringType())] if malformed else []))


def read_event_stream(spark, source: StreamSource):
    """A streaming DataFrame of raw events with our column names (missing optional ones as null); see `_read`."""
    return _read(spark, source, INTERACTION_REQUIRED, INTERACTION_OPTIONAL, "event stream")


def read_item_stream(spark, source: StreamSource):
    """A streaming DataFrame of raw catalogue rows with our column names and `_arrived`; see `_read`."""
    return _read(spark, source, ITEM_REQUIRED, ITEM_OPTIONAL, "item stream", arrived=True)


def _read(spark, source: StreamSource, required, optional, what: str, arrived: bool = False):
    """The stream of `source` as text columns `required` + `optional` (missing optional ones as null).

    CSV files need a header row, the same in every file: `source.header`, else the header of a file already in
    the folder (a file with another header stops the stream with Spark's error naming it, rather than shifting
    columns).
    JSON lines and Kafka values are objects keyed by column name; Parquet is read with the schema of the files
    already there (at least one must be).
    """
    from pyspark.sql import functions as F

    names = file_columns(source, (*required, *optional))
    if source.format == "kafka":
        raw = spark.readStream.format("kafka").options(**source.options).load()
        value = F.col("value").cast("string")
        parsed = F.from_json(value, _string_schema(names, False))
        frame = raw.select(
            parsed.alias("_event"),
            value.alias("_value"),
            F.concat_ws(":", "topic", F.col("partition").cast("string"), F.col("offset").cast("string")).alias(
                SOURCE_FILE
            ),
            F.col("timestamp").alias(ARRIVED),
        )
        frame = frame.select(
            *[F.col(f"_event.`{n}`").alias(n) for n in names],
            F.when(F.col("_event").isNull(), F.col("_value")).alias(MALFORMED),
            SOURCE_FILE,
            ARRIVED,
        )
    else:
        reader = spark.readStream.options(**source.options)
        if source.format == "csv":
            header = source.header or _csv_header(spark, source)
            if not header:
                raise InputSchemaError(
                    f"{source.path}: no CSV file there to read the {what}'s header from; set the source's `header` "
                    f"to the files' columns in order, e.g. {names[:4]}"
                )
            frame = (
                reader.schema(_string_schema(header, True))
                .option("header", True)
                .option("enforceSchema", False)  # a file whose header differs fails loudly, never shifts columns
                .option("sep", source.delimiter)
                # the batch stage's reading (`io._csv`): a quoted field may span lines, a blank line is a
                # malformed row; the line reader would split the one and drop the other. It reads each file in
                # one task, which costs little here: stream files are small, and many land per micro-batch.
                .option("multiLine", True)
                .option("quote", '"')
                .option("escape", '"')
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", MALFORMED)
                .csv(source.path)
            )
        elif source.format == "json":
            frame = (
                reader.schema(_string_schema(names, True))
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", MALFORMED)
                .json(source.path)
            )
        else:
            try:
                schema = spark.read.parquet(source.path).schema
            except Exception as err:  # noqa: BLE001 - Spark's AnalysisException: nothing to infer from
                raise InputSchemaError(
                    f"{source.path}: a Parquet {what} needs one file there to read its schema from ({err})"
                ) from err
            frame = as_text_columns(reader.schema(schema).parquet(source.path), source.path)
        frame = frame.withColumns(
            {SOURCE_FILE: F.col("_metadata.file_path"), ARRIVED: F.col("_metadata.file_modification_time")}
        )
    frame = _renamed(frame, source)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputSchemaError(f"{source.path or 'kafka'}: the {what} has no column(s) {missing}")
    for name in optional:
        if name not in frame.columns:
            frame = frame.withColumn(name, F.lit(None).cast("string"))
    if MALFORMED not in frame.columns:
        frame = frame.withColumn(MALFORMED, F.lit(None).cast("string"))
    instant = [NATIVE_MICROS + "timestamp"] if NATIVE_MICROS + "timestamp" in frame.columns else []
    return frame.select(*required, *optional, SOURCE_FILE, MALFORMED, *instant, *([ARRIVED] if arrived else []))


def _csv_header(spark, source: StreamSource) -> list[str] | None:
    """The header of a CSV file already in the folder (None when none is): the stream's column order."""
    import csv

    from profile_features.spark.io import path_exists

    if not path_exists(spark, source.path):
        return None
    try:
        first = spark.read.text(source.path).first()
    except Exception:  # noqa: BLE001 - an empty folder: Spark cannot list a text file in it
        return None
    if first is None:
        return None
    header = next(csv.reader([first.value], delimiter=source.delimiter), [])
    return [c.strip().lstrip("\ufeff").strip() for c in header] or None
