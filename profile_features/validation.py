"""Input validation: every row read is either accepted or rejected with a reason.

The Spark job casts every input column to string first, so these functions see
the values exactly as read (CSV text, or Parquet values rendered as text) and one
code path serves both formats. Rows are never dropped here: `classify_*` returns
each input row once, with `reject_reason` null for usable rows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "InputSchemaError",
    "INTERACTION_REQUIRED",
    "INTERACTION_OPTIONAL",
    "ITEM_REQUIRED",
    "ITEM_OPTIONAL",
    "SOURCE_FILE",
    "KNOWN_ITEM",
    "require_columns",
    "parse_timestamps",
    "classify_interactions",
    "classify_items",
]

INTERACTION_REQUIRED = ("user_id", "item_id", "timestamp")
INTERACTION_OPTIONAL = ("rating", "event_type")
ITEM_REQUIRED = ("item_id", "title")
ITEM_OPTIONAL = ("genres", "year", "description")
SOURCE_FILE = "_source_file"
KNOWN_ITEM = "_known_item"  # joined on by the Spark stage: is the row's item in the accepted catalogue


class InputSchemaError(ValueError):
    """An input table lacks a required column."""


def require_columns(columns: Iterable[str], required: Iterable[str], table: str, source: str) -> None:
    """Fail with the file and the missing column names when `required` is not covered."""
    present = list(columns)
    missing = [name for name in required if name not in present]
    if missing:
        raise InputSchemaError(
            f"{source}: {table} input is missing required column(s) {missing}; found columns {present}"
        )


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype("string").str.strip() == "")


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse epoch seconds or ISO-8601 text to UTC microsecond timestamps; NaT where unparseable.

    Naive ISO values are taken as UTC.
    """
    text = values.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    from_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    from_text = pd.to_datetime(text.where(numeric.isna()), utc=True, errors="coerce", format="mixed")
    parsed = from_epoch.where(numeric.notna(), from_text)
    return parsed.astype("datetime64[us, UTC]")


def _first_reason(checks: list[tuple[str, pd.Series]], index: pd.Index) -> pd.Series:
    """The first failing check's reason per row (checks in priority order), else None."""
    reason = pd.Series([None] * len(index), index=index, dtype="object")
    for name, failed in checks:
        reason = reason.where(reason.notna() | ~failed.fillna(False).astype(bool), name)
    return reason


def _later_duplicates(keys: pd.DataFrame, records: list[str]) -> pd.Series:
    """True for every repeat of a key but the first in raw-record order.

    Spark does not order rows within a group, so "first" is defined by the raw
    record text: the same input always keeps the same row.
    """
    order = sorted(range(len(records)), key=records.__getitem__)
    repeated = keys.iloc[order].duplicated(keep="first")
    return repeated.reindex(keys.index)


def _records(batch: pd.DataFrame, columns: list[str]) -> list[str]:
    raw = batch[columns].astype("object").where(batch[columns].notna(), None)
    return [json.dumps(dict(zip(columns, row)), default=str) for row in raw.itertuples(index=False)]


def classify_interactions(batch: pd.DataFrame, known_item_ids: Collection[str] | None = None) -> pd.DataFrame:
    """Parse and check interaction rows.

    Args:
        batch: raw rows (string values) holding whole users, so duplicates are
            found within the batch. Columns: INTERACTION_REQUIRED, any of
            INTERACTION_OPTIONAL, optionally `_source_file`, and `_known_item`
            (True where the item is in the accepted catalogue: Spark joins it on,
            so no worker ever holds the catalogue).
        known_item_ids: accepted catalogue item ids, when `batch` has no `_known_item`.

    Returns:
        One row per input row: user_id, item_id, timestamp, rating, event_type (parsed),
        reject_reason (None if usable), source_file, record (raw row as JSON).
    """
    raw_columns = [c for c in (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL) if c in batch.columns]
    user = batch["user_id"].astype("string").str.strip()
    item = batch["item_id"].astype("string").str.strip()
    timestamp = parse_timestamps(batch["timestamp"])
    rating_raw = batch["rating"] if "rating" in batch.columns else pd.Series(np.nan, index=batch.index)
    rating = pd.to_numeric(rating_raw.astype("string").str.strip(), errors="coerce")
    event_type = (
        batch["event_type"].astype("string")
        if "event_type" in batch.columns
        else pd.Series(pd.NA, index=batch.index, dtype="string")
    )

    key = pd.DataFrame({"u": user, "i": item, "t": timestamp})
    records = _records(batch, raw_columns)
    checks = [
        ("null user_id", _blank(batch["user_id"])),
        ("null item_id", _blank(batch["item_id"])),
        ("unparseable timestamp", timestamp.isna()),
        ("unparseable rating", rating.isna() & ~_blank(rating_raw)),
        ("unknown item_id", ~_known(batch, item, known_item_ids)),
        ("duplicate interaction", _later_duplicates(key, records)),
    ]
    return pd.DataFrame(
        {
            "user_id": user,
            "item_id": item,
            "timestamp": timestamp,
            "rating": rating.astype("float64"),
            "event_type": event_type.fillna("interaction").astype(object),
            "reject_reason": _first_reason(checks, batch.index),
            "source_file": batch[SOURCE_FILE] if SOURCE_FILE in batch.columns else None,
            "record": records,
        }
    ).astype({"user_id": object, "item_id": object})


def _known(batch: pd.DataFrame, item: pd.Series, known_item_ids: Collection[str] | None) -> pd.Series:
    if KNOWN_ITEM in batch.columns:
        return batch[KNOWN_ITEM].astype("boolean").fillna(False).astype(bool)
    if known_item_ids is None:
        raise ValueError(f"classify_interactions needs a {KNOWN_ITEM} column or known_item_ids")
    return item.isin(known_item_ids if isinstance(known_item_ids, (set, frozenset)) else set(known_item_ids))


def classify_items(batch: pd.DataFrame) -> pd.DataFrame:
    """Parse and check catalogue rows; `batch` holds every row of an item id.

    Returns:
        item_id, title, genres, year (Int64), description, reject_reason, source_file, record.
    """
    raw_columns = [c for c in (*ITEM_REQUIRED, *ITEM_OPTIONAL) if c in batch.columns]

    def text(name: str) -> pd.Series:
        if name not in batch.columns:
            return pd.Series("", index=batch.index, dtype="string")
        return batch[name].astype("string").str.strip().fillna("")

    year_raw = batch["year"] if "year" in batch.columns else pd.Series(pd.NA, index=batch.index)
    year = pd.to_numeric(year_raw.astype("string").str.strip(), errors="coerce")
    item = text("item_id")
    records = _records(batch, raw_columns)
    checks = [
        ("null item_id", _blank(batch["item_id"])),
        ("empty title", _blank(batch["title"])),
        ("unparseable year", (year.isna() & ~_blank(year_raw)) | (year.notna() & (year % 1 != 0))),
        ("duplicate item_id", _later_duplicates(item.to_frame(), records)),
    ]
    return pd.DataFrame(
        {
            "item_id": item.astype(object),
            "title": text("title").astype(object),
            "genres": text("genres").astype(object),
            "year": year.round().astype("Int64"),
            "description": text("description").astype(object),
            "reject_reason": _first_reason(checks, batch.index),
            "source_file": batch[SOURCE_FILE] if SOURCE_FILE in batch.columns else None,
            "record": records,
        }
    )
