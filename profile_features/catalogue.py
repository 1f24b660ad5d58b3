"""Every table and folder the jobs write under `data_dir`, declared once, and the paths of one snapshot.

A snapshot is identified by its cutoff's UTC date: per-snapshot tables hold one `run_date=<date>`
partition per snapshot, and re-running a snapshot replaces its partition. Nothing outside this module
spells a table's folder name or a `run_date=` path: stages ask a `Snapshot` (or a `DataDir`) for them,
so erasure, streaming and the Feast repo all see the same layout.

    snapshot = Snapshot(config.data_dir, cutoff)
    snapshot.path(HISTORIES)            # <data_dir>/histories/run_date=2024-01-31
    snapshot.root(HISTORIES)            # <data_dir>/histories  (all snapshots: what Feast reads)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from profile_features import schemas, storage

__all__ = [
    "Table",
    "DataDir",
    "Snapshot",
    "TABLES",
    "run_date_of",
    "partition_folder",
    "run_dates_under",
    "partitions_under",
    "STREAM_PARTITION",
    "table_named",
    "INTERACTIONS",
    "ITEMS",
    "REJECTS",
    "HISTORIES",
    "USER_STATS",
    "ITEM_STATS",
    "PROFILES",
    "PROFILE_CACHE",
    "PROFILE_DEAD_LETTERS",
    "PROFILE_REFRESH_REJECTS",
    "USER_PROFILE_EMBEDDINGS",
    "ITEM_TEXT_EMBEDDINGS",
    "ENCODERS",
    "TRANSFORMS",
    "USER_SEMANTIC",
    "ITEM_SEMANTIC",
    "STUDENT",
    "STUDENT_TRAINING",
    "USER_STUDENT",
    "ITEM_STUDENT",
    "RUNS",
    "STAGING",
    "STREAM_EVENTS",
    "STREAM_REJECTS",
    "PROFILE_REFRESH_QUEUE",
    "STREAM_CHECKPOINT",
    "STREAM_ITEMS",
    "STREAM_ITEM_REJECTS",
    "STREAM_ITEMS_CHECKPOINT",
    "TOMBSTONES",
    "ERASURE_AUDIT",
]

RUN_DATE = "run_date"
# The partition of a per-snapshot table that holds what the stream wrote between snapshots (USER_STUDENT):
# read with the table by Feast and Spark, never taken for a snapshot (`run_dates_under` lists dates only).
STREAM_PARTITION = "stream"


@dataclass(frozen=True)
class Table:
    """One folder under `data_dir`.

    `schema` is the Arrow schema of a Parquet table (None for folders of files: checkpoints, JSON run
    summaries, fitted transforms, and for tables whose columns depend on the config, like the semantic
    ones: see `schemas.semantic_schema`). `key` is the entity column (None when the table is not keyed
    by user or item). `personal` marks what holds user ids or text about a user: what erasure must reach.
    """

    name: str
    description: str
    schema: pa.Schema | None = None
    per_snapshot: bool = True
    key: str | None = None
    personal: bool = False
    columns: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.schema is not None and not self.columns:
            object.__setattr__(self, "columns", tuple(self.schema.names))


INTERACTIONS = Table(
    "validated/interactions", "cleaned interactions, replaced per run", schemas.INTERACTIONS, False, "user_id", True
)
ITEMS = Table("validated/items", "cleaned catalogue, replaced per run", schemas.ITEMS, False, "item_id")
REJECTS = Table("rejects", "unusable input rows with reason and source file", schemas.REJECTS, False, None, True)
HISTORIES = Table("histories", "each user's history at the cutoff", schemas.HISTORIES, True, "user_id", True)
USER_STATS = Table("user_stats", "behavioural user columns (the baseline)", schemas.USER_STATS, True, "user_id", True)
ITEM_STATS = Table("item_stats", "behavioural item columns (the baseline)", schemas.ITEM_STATS, True, "item_id")
PROFILES = Table("profiles", "LLM-written user profiles with provenance", schemas.PROFILES, True, "user_id", True)
PROFILE_CACHE = Table(
    "profile_cache", "profiles by history hash, reused across runs", None, False, "user_id", personal=True
)
PROFILE_DEAD_LETTERS = Table(
    "profile_dead_letters", "profile requests that failed for good", None, True, "user_id", personal=True
)
PROFILE_REFRESH_REJECTS = Table(
    "profile_refresh_rejects", "refresh-list rows that could not be used", None, True, "user_id", personal=True
)
USER_PROFILE_EMBEDDINGS = Table(
    "user_profile_embeddings", "profile text embeddings", schemas.USER_PROFILE_EMBEDDINGS, True, "user_id", True
)
ITEM_TEXT_EMBEDDINGS = Table(
    "item_text_embeddings", "item text embeddings", schemas.ITEM_TEXT_EMBEDDINGS, True, "item_id"
)
ENCODERS = Table("encoders", "exported encoder backends (ONNX / OpenVINO)", None, False)
TRANSFORMS = Table("transforms", "fitted PCA / k-means / semantic-ID transforms", None, False)
USER_SEMANTIC = Table("user_semantic", "compressed profile dimensions and clusters", None, True, "user_id", True)
ITEM_SEMANTIC = Table("item_semantic", "compressed item dimensions, clusters, semantic IDs", None, True, "item_id")
STUDENT = Table("student", "the distilled student's checkpoint", None, True)
STUDENT_TRAINING = Table(
    "_staging/student_training", "training examples for the student (scratch, removed after)", None, True, None, True
)
USER_STUDENT = Table("user_student", "student user vectors and drift", schemas.USER_STUDENT, True, "user_id", True)
ITEM_STUDENT = Table("item_student", "student item vectors and biases", schemas.ITEM_STUDENT, True, "item_id")
RUNS = Table("runs", "JSON summary of each job run", None, False)
STAGING = Table("_staging", "scratch of the commit protocol", None, False, personal=True)
# The stream (profile_features/streaming): one file per micro-batch in each; its `user_student` rows go to the
# STREAM_PARTITION of USER_STUDENT, beside the snapshots, so Feast's source serves and joins them too.
STREAM_EVENTS = Table(
    "stream/events", "accepted stream events, one file per micro-batch", schemas.STREAM_EVENTS, False, "user_id", True
)
STREAM_REJECTS = Table(
    "stream/rejects",
    "unusable stream events with reason, one file per micro-batch",
    schemas.STREAM_REJECTS,
    False,
    None,
    True,
)
PROFILE_REFRESH_QUEUE = Table(
    "stream/profile_refresh_queue",
    "users the stream found drifting from their LLM profile (profile.only_users)",
    schemas.PROFILE_REFRESH_QUEUE,
    False,
    "user_id",
    True,
)
STREAM_CHECKPOINT = Table("stream/checkpoint", "Spark's offsets and commits of the stream", None, False)
# New catalogue items through the stream: their text, semantic and student rows go to the STREAM_PARTITION of
# ITEM_TEXT_EMBEDDINGS, ITEM_SEMANTIC and ITEM_STUDENT; the accepted rows also widen the events' catalogue.
STREAM_ITEMS = Table(
    "stream/items", "accepted streamed catalogue rows, one file per micro-batch", schemas.STREAM_ITEMS, False, "item_id"
)
STREAM_ITEM_REJECTS = Table(
    "stream/item_rejects",
    "unusable streamed catalogue rows with reason, one file per micro-batch",
    schemas.STREAM_REJECTS,
    False,
)
STREAM_ITEMS_CHECKPOINT = Table(
    "stream/items_checkpoint", "Spark's offsets and commits of the item stream", None, False
)
# Erasure (profile_features/erasure): salted hashes of forgotten ids, never the ids, so not personal.
TOMBSTONES = Table("tombstones", "salted hashes of forgotten user ids, honoured by validation", None, False)
ERASURE_AUDIT = Table("erasure_audit", "one JSON record per erasure request: counts, no ids", None, False)

TABLES: tuple[Table, ...] = (
    INTERACTIONS,
    ITEMS,
    REJECTS,
    HISTORIES,
    USER_STATS,
    ITEM_STATS,
    PROFILES,
    PROFILE_CACHE,
    PROFILE_DEAD_LETTERS,
    PROFILE_REFRESH_REJECTS,
    USER_PROFILE_EMBEDDINGS,
    ITEM_TEXT_EMBEDDINGS,
    ENCODERS,
    TRANSFORMS,
    USER_SEMANTIC,
    ITEM_SEMANTIC,
    STUDENT,
    STUDENT_TRAINING,
    USER_STUDENT,
    ITEM_STUDENT,
    RUNS,
    STAGING,
    STREAM_EVENTS,
    STREAM_REJECTS,
    PROFILE_REFRESH_QUEUE,
    STREAM_CHECKPOINT,
    STREAM_ITEMS,
    STREAM_ITEM_REJECTS,
    STREAM_ITEMS_CHECKPOINT,
    TOMBSTONES,
    ERASURE_AUDIT,
)


def table_named(name: str) -> Table:
    """The declared table whose folder is `name` (for names that come from a config or a CLI)."""
    for table in TABLES:
        if table.name == name:
            return table
    raise KeyError(f"no table {name!r} in the catalogue (known: {', '.join(t.name for t in TABLES)})")


def run_date_of(cutoff: datetime) -> str:
    """The snapshot id of a cutoff: its UTC date (a naive cutoff is taken as UTC)."""
    if cutoff.tzinfo is not None:
        cutoff = cutoff.astimezone(timezone.utc)
    return cutoff.date().isoformat()


def partition_folder(run_date: str) -> str:
    """The folder name of one snapshot's partition, `run_date=<date>` (also below roots outside `data_dir`,
    such as a configured dead-letter path)."""
    return f"{RUN_DATE}={run_date}"


def partitions_under(root: str) -> list[str]:
    """Every `run_date=` partition in the folder `root` (a path or URI): snapshots, oldest first, then the
    stream's; empty when it is absent."""
    from pyarrow import fs

    filesystem, path = storage.filesystem(root)
    infos = filesystem.get_file_info(fs.FileSelector(path.rstrip("/"), allow_not_found=True))
    prefix = partition_folder("")
    names = [
        i.base_name[len(prefix) :] for i in infos if i.type == fs.FileType.Directory and i.base_name.startswith(prefix)
    ]
    return sorted(n for n in names if n != STREAM_PARTITION) + [n for n in names if n == STREAM_PARTITION]


def run_dates_under(root: str) -> list[str]:
    """Run dates of the snapshot partitions in the folder `root` (a path or URI), oldest first; empty when it is
    absent. The stream's partition is no snapshot and is not listed."""
    return [p for p in partitions_under(root) if p != STREAM_PARTITION]


@dataclass(frozen=True)
class DataDir:
    """Paths of a data directory (a local path or a storage URI) that do not depend on a snapshot."""

    data_dir: str

    def root(self, table: Table) -> str:
        """The table's folder: every snapshot's partition lives below it (what Feast and Spark read)."""
        return storage.join(self.data_dir, table.name)

    def partition(self, table: Table, run_date: str) -> str:
        """One snapshot's partition of a per-snapshot table."""
        if not table.per_snapshot:
            raise ValueError(f"{table.name} is not partitioned by snapshot")
        return storage.join(self.root(table), partition_folder(run_date))

    def run_dates(self, table: Table) -> list[str]:
        """The run dates the table holds a partition of, oldest first (empty when the table is absent)."""
        return run_dates_under(self.root(table))

    def newest_run_date(self, table: Table, run_date: str, inclusive: bool = True) -> str | None:
        """The newest run date of `table` at or before (strictly before, unless `inclusive`) `run_date`, if any."""
        earlier = [r for r in self.run_dates(table) if r < run_date or (inclusive and r == run_date)]
        return earlier[-1] if earlier else None

    def snapshot(self, run_date_or_cutoff: str | datetime) -> Snapshot:
        return Snapshot(self.data_dir, run_date_or_cutoff)


@dataclass(frozen=True)
class Snapshot(DataDir):
    """The paths of one snapshot: `Snapshot(data_dir, cutoff)` or `Snapshot(data_dir, "2024-01-31")`."""

    run_date: str | datetime = ""
    # The exact cutoff when the snapshot was made from one (what build_histories cuts at); None from a run date.
    cutoff: datetime | None = field(default=None, compare=False)

    def __post_init__(self):
        if isinstance(self.run_date, datetime):
            object.__setattr__(self, "cutoff", self.run_date)
            object.__setattr__(self, "run_date", run_date_of(self.run_date))
        if not self.run_date:
            raise ValueError("a snapshot needs a cutoff or a run date")

    def path(self, table: Table) -> str:
        """Where this snapshot's rows of `table` live (the table itself when it is not per snapshot)."""
        return self.partition(table, self.run_date) if table.per_snapshot else self.root(table)
