"""Removing users from the Parquet tables under `data_dir`, one partition at a time, with Spark.

A partition (one `run_date=` folder, or a whole table that is not per snapshot) is read, and only
when it holds a forgotten user is it rewritten without them through `spark.io.write_atomic`: the
jobs' commit protocol, so a kill leaves each partition old or new and a re-run finishes the job
(a partition already rewritten holds no forgotten user, so the re-run skips it).

How a row is matched depends on what the table holds (`match_kind`): a `user_id` column; else a
REJECTS `record` (JSON text, whose user_id is normalised as validation does; a record that is not
JSON, a malformed CSV line, is matched when one of its fields is the id); else a `history_hash` (the
profile cache, keyed by the history's hash, whose hashes are read from the histories and profiles first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from profile_features import storage
from profile_features.catalogue import (
    HISTORIES,
    PROFILE_CACHE,
    PROFILES,
    STAGING,
    STUDENT_TRAINING,
    TABLES,
    DataDir,
    Table,
    partition_folder,
    partitions_under,
)
from profile_features.spark.commit import HadoopFS, recover_table
from profile_features.spark.io import read_table, write_atomic
from profile_features.spark.validate_rules import normalized_id

__all__ = [
    "PartitionResult",
    "settle_tables",
    "partitions_of",
    "match_kind",
    "history_hashes",
    "forget_in_partition",
    "parquet_tables",
]

# Folders of Parquet files under the profile cache (profiles/store.py); each is rewritten as a whole.
CACHE_FOLDERS = ("parts", "compacted")


@dataclass(frozen=True)
class PartitionResult:
    table: str
    partition: str  # the run date, a cache folder, or "" for a whole table
    rows_removed: int


def parquet_tables() -> list[Table]:
    """Personal tables that hold Parquet rows, the profile cache first: its rows are found through the
    histories' hashes, so it is cleaned while those still name the user (a re-run after a kill too)."""
    scratch = {STAGING.name, STUDENT_TRAINING.name}  # scratch folders: deleted, not rewritten (forget.py)
    personal = [t for t in TABLES if t.personal and t.name not in scratch]
    return sorted(personal, key=lambda t: t is not PROFILE_CACHE)


def settle_tables(spark, roots: list[str]) -> None:
    """Repair commits to these tables that were killed part way (as every reader does), before their
    partitions are listed: a partition a killed commit moved aside would otherwise be missing from the list."""
    fs = HadoopFS(spark)
    for root in roots:
        for path in (root, *(storage.join(root, f) for f in CACHE_FOLDERS)):
            recover_table(fs, path)


def partitions_of(data: DataDir, table: Table, root: str | None = None) -> list[tuple[str, str]]:
    """(label, path) of each partition of `table` that exists (`root`: a configured folder instead)."""
    root = root or data.root(table)
    if not storage.exists(root):
        return []
    if table is PROFILE_CACHE:
        return [(f, storage.join(root, f)) for f in CACHE_FOLDERS if storage.exists(storage.join(root, f))]
    if table.per_snapshot:
        return [(d, storage.join(root, partition_folder(d))) for d in partitions_under(root)]
    return [("", root)]


def match_kind(columns: Iterable[str]) -> str | None:
    """How rows of a table with these columns name a user: "user_id", "record", "history_hash" or None."""
    columns = set(columns)
    for kind in ("user_id", "record", "history_hash"):
        if kind in columns:
            return kind
    return None


def history_hashes(spark, data: DataDir, user_ids: list[str]) -> list[str]:
    """The history hashes of the users in every snapshot of the histories and profiles (the profile
    cache's key)."""
    from pyspark.sql import functions as F

    ids = _ids_frame(spark, user_ids)
    found: set[str] = set()
    for table in (HISTORIES, PROFILES):
        for _, path in partitions_of(data, table):
            rows = read_table(spark, path).join(F.broadcast(ids), "user_id", "left_semi").select("history_hash")
            found.update(r.history_hash for r in rows.distinct().collect() if r.history_hash)
    return sorted(found)


def _ids_frame(spark, values: list[str], name: str = "user_id"):
    return spark.createDataFrame([(v,) for v in values], f"{name} string")


def _field_pattern(user_ids: list[str]) -> str:
    """A Java regex: any of the ids as a whole field of a delimited line (so "1" does not match "10")."""
    ids = "|".join(r"\Q" + u.replace(r"\E", r"\E\\E\Q") + r"\E" for u in user_ids)
    edge = "[,\t;|\\s\"']"
    return f"(^|{edge})(?:{ids})($|{edge})"


def _matching(frame, kind: str, user_ids: list[str], hashes: list[str]):
    """`frame` with a boolean `_forget` column."""
    from pyspark.sql import functions as F

    spark = frame.sparkSession
    if kind == "history_hash":
        keys, column = _ids_frame(spark, hashes, "_key"), F.col("history_hash")
    else:
        keys = _ids_frame(spark, user_ids, "_key")
        column = F.col("user_id")
        if kind == "record":
            column = normalized_id(F.get_json_object(F.col("record"), "$.user_id"))
    flagged = frame.withColumn("_match", column).join(F.broadcast(keys), F.col("_match") == F.col("_key"), "left")
    hit = F.col("_key").isNotNull()
    if kind == "record":  # a record that is not JSON (a malformed CSV line): any occurrence of an id
        unparsed = F.get_json_object(F.col("record"), "$").isNull() & F.col("record").isNotNull()
        hit = hit | (unparsed & F.col("record").rlike(_field_pattern(user_ids)))
    return flagged.withColumn("_forget", hit).drop("_match", "_key")


def forget_in_partition(spark, table: Table, label: str, path: str, user_ids: list[str], hashes: list[str]):
    """Rewrite the partition at `path` without the users' rows, if it holds any; a PartitionResult."""
    frame = read_table(spark, path)
    kind = match_kind(frame.columns)
    if kind is None or (kind == "history_hash" and not hashes):
        return PartitionResult(table.name, label, 0)
    flagged = _matching(frame, kind, user_ids, hashes)
    removed = flagged.where("_forget").count()
    if removed:
        # Written in full to staging before the commit moves it over `path`, so reading `path` here is safe.
        write_atomic(flagged.where("NOT _forget").drop("_forget"), path)
    return PartitionResult(table.name, label, removed)
