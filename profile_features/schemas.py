"""Explicit Arrow schemas of every table the jobs hand to each other.

Timestamps are UTC microseconds: Spark 4 rejects nanosecond parquet timestamps and
Feast compares `event_timestamp` against tz-aware entity timestamps.
Spark schemas are derived from these, so the two never drift apart.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

__all__ = [
    "TS",
    "INTERACTIONS",
    "ITEMS",
    "REJECTS",
    "HISTORIES",
    "PROFILES",
    "USER_PROFILE_EMBEDDINGS",
    "ITEM_TEXT_EMBEDDINGS",
    "USER_STUDENT",
    "ITEM_STUDENT",
    "USER_STATS",
    "ITEM_STATS",
    "semantic_schema",
    "SID_TRANSFORM_ID",
    "sid_column_names",
    "is_sid_column",
    "sid_columns_in",
    "to_utc",
]

TS = pa.timestamp("us", tz="UTC")

INTERACTIONS = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("timestamp", TS),
        ("rating", pa.float64()),
        ("event_type", pa.string()),
    ]
)

ITEMS = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("genres", pa.string()),  # "|"-separated
        ("year", pa.int64()),
        ("description", pa.string()),
    ]
)

# Rows that could not be used, kept with the reason and where they came from.
REJECTS = pa.schema(
    [
        ("table", pa.string()),
        ("source_file", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),  # the raw row as JSON, values as read
    ]
)

# The stream (profile_features/streaming): every accepted event and every reject, tagged with its micro-batch.
STREAM_EVENTS = pa.schema([*INTERACTIONS, ("stream_batch", pa.int64())])
STREAM_REJECTS = pa.schema([*REJECTS, ("stream_batch", pa.int64())])
STREAM_ITEMS = pa.schema([*ITEMS, ("stream_batch", pa.int64())])
PROFILE_REFRESH_QUEUE = pa.schema(
    [
        ("user_id", pa.string()),
        ("queued_at", TS),  # the event time of the user's newest event when queued
        ("profile_drift", pa.float64()),
        ("stream_batch", pa.int64()),
    ]
)

PROVENANCE = [
    ("generator", pa.string()),
    ("model", pa.string()),
    ("prompt_version", pa.string()),
    ("history_hash", pa.string()),
]

HISTORIES = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_timestamp", TS),  # the cutoff the history was cut at
        ("item_ids", pa.list_(pa.string())),  # oldest -> newest
        ("history_json", pa.string()),  # events with item text, oldest -> newest
        ("history_length", pa.int64()),
        ("last_interaction_at", TS),
        ("history_hash", pa.string()),
    ]
)

PROFILES = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_timestamp", TS),
        ("profile_text", pa.string()),
        *PROVENANCE,
        ("history_length", pa.int64()),
    ]
)

USER_PROFILE_EMBEDDINGS = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_timestamp", TS),
        ("profile_embedding", pa.list_(pa.float32())),
        ("profile_text", pa.string()),
        *PROVENANCE,
        ("encoder", pa.string()),
    ]
)

ITEM_TEXT_EMBEDDINGS = pa.schema(
    [
        ("item_id", pa.string()),
        ("event_timestamp", TS),
        ("item_text_embedding", pa.list_(pa.float32())),
        ("item_text", pa.string()),
        ("text_hash", pa.string()),
        ("encoder", pa.string()),
    ]
)

# The distilled student's outputs per user (see student.scoring).
USER_STUDENT = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_timestamp", TS),
        ("student_embedding", pa.list_(pa.float32())),
        ("student_profile_embedding", pa.list_(pa.float32())),
        ("profile_drift", pa.float64()),
        ("student_history_len", pa.int64()),
        ("student_fallback", pa.bool_()),
        ("student_checkpoint_id", pa.string()),
        ("student_variant", pa.string()),
    ]
)

# Plain behavioural columns: the "ranker without our features" baseline.
USER_STATS = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_timestamp", TS),
        ("user_interaction_count", pa.int64()),
        ("user_mean_rating", pa.float64()),
        ("user_days_active", pa.float64()),
    ]
)

ITEM_STATS = pa.schema(
    [
        ("item_id", pa.string()),
        ("event_timestamp", TS),
        ("item_interaction_count", pa.int64()),
        ("item_mean_rating", pa.float64()),
    ]
)


# The items' semantic-ID codes, one column per level (coarse to fine), and the transform that assigned them.
_SID_PREFIX = "item_sid_"
SID_TRANSFORM_ID = f"{_SID_PREFIX}transform_id"


def sid_column_names(levels: int) -> list[str]:
    """`item_sid_0..L-1`: the code columns of `levels` semantic-ID levels."""
    return [f"{_SID_PREFIX}{level}" for level in range(levels)]


def is_sid_column(name: str) -> bool:
    """Whether `name` is a semantic-ID code column (not the transform id)."""
    return name.startswith(_SID_PREFIX) and name[len(_SID_PREFIX) :].isdigit()


def sid_columns_in(columns) -> list[str]:
    """The semantic-ID code columns among `columns`, by level."""
    return sorted((c for c in columns if is_sid_column(c)), key=lambda c: int(c[len(_SID_PREFIX) :]))


def semantic_schema(key: str, prefix: str, components: int, sid_levels: int = 0) -> pa.Schema:
    """user_semantic / item_semantic: `<prefix>_pc_0..k-1`, `<prefix>_cluster`, transform id, and for
    items with semantic IDs `item_sid_0..L-1` (-1: no vector) and their transform id."""
    sid = [(name, pa.int64()) for name in sid_column_names(sid_levels)]
    return pa.schema(
        [(key, pa.string()), ("event_timestamp", TS)]
        + [(f"{prefix}_pc_{i}", pa.float32()) for i in range(components)]
        + [(f"{prefix}_cluster", pa.int64()), (f"{prefix}_transform_id", pa.string())]
        + (sid + [(SID_TRANSFORM_ID, pa.string())] if sid_levels else [])
    )


# The student's item side (see student.scoring.score_items): the vector and bias it scores each item
# with, for every catalogue item it can represent (new items by their content alone).
ITEM_STUDENT = pa.schema(
    [
        ("item_id", pa.string()),
        ("event_timestamp", TS),
        ("student_item_embedding", pa.list_(pa.float32())),
        ("student_item_bias", pa.float64()),
        ("student_item_seen", pa.bool_()),
        ("student_checkpoint_id", pa.string()),
    ]
)


def to_utc(values: pd.Series) -> pd.Series:
    """UTC microsecond timestamps. Spark hands pandas naive values in its session
    time zone, which the jobs pin to UTC, so naive means UTC here."""
    values = pd.to_datetime(values)
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
