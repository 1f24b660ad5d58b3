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

from profile_features.config import InputRules

__all__ = [
    "InputSchemaError",
    "InputDataError",
    "INTERACTION_REQUIRED",
    "INTERACTION_OPTIONAL",
    "ITEM_REQUIRED",
    "ITEM_OPTIONAL",
    "SOURCE_FILE",
    "MALFORMED",
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
MALFORMED = "_malformed"  # the raw text of a CSV row whose field count differs from the header
MALFORMED_ROW = "malformed CSV row (field count differs from the header)"
KNOWN_ITEM = "_known_item"  # joined on by the Spark stage: is the row's item in the accepted catalogue


class InputSchemaError(ValueError):
    """An input table lacks a required column, or a column has a type ids cannot have."""


class InputDataError(ValueError):
    """No row of an input table is usable (the rejects say why, row by row)."""


def require_columns(columns: Iterable[str], required: Iterable[str], table: str, source: str) -> None:
    """Fail with the file and the missing column names when `required` is not covered."""
    present = list(columns)
    repeated = sorted({name for name in present if present.count(name) > 1})
    if repeated:
        raise InputSchemaError(f"{source}: {table} input has the column(s) {repeated} more than once")
    missing = [name for name in required if name not in present]
    if missing:
        hint = ""
        if len(present) == 1 and any(sep in present[0] for sep in ";\t|"):
            sep = next(sep for sep in ";\t|" if sep in present[0])
            hint = f" (the header looks {sep!r}-separated: set the input's `delimiter`)"
        raise InputSchemaError(
            f"{source}: {table} input is missing required column(s) {missing}; found columns {present}{hint}"
        )


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype("string").str.strip() == "")


_MICROS = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}  # microseconds per unit
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _micros(moment) -> float:
    return pd.Timestamp(moment).timestamp() * 1e6


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _numbers(text: pd.Series) -> pd.Series:
    """float64 per value ('inf' and '1e400' read as inf), NaN where the text is not a number."""
    number = pd.to_numeric(text, errors="coerce").astype("float64")
    retry = number.isna() & text.notna()  # pandas gives NaN on overflow; Python gives inf
    if retry.any():
        number[retry] = text[retry].map(_float).astype("float64")
    return number


def _text_times(text: pd.Series) -> pd.Series:
    """ISO-8601 (or any form pandas reads) per value as Int64 epoch microseconds; NA where unparseable."""
    try:
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        nanos = pd.Series(parsed.astype("int64"), index=text.index).where(parsed.notna())
        return (nanos.astype("Int64") // 1000).astype("Int64")
    except (OverflowError, ValueError):  # one value pandas cannot hold: parse each alone
        return text.map(_one_text_time).astype("Int64")


def _one_text_time(value):
    if value is None or value is pd.NA:
        return pd.NA
    try:
        parsed = pd.to_datetime(value, utc=True)
    except (OverflowError, ValueError, TypeError):
        return pd.NA
    return pd.NA if pd.isna(parsed) else parsed.value // 1000


def parse_timestamps(values: pd.Series, rules: InputRules | None = None) -> tuple[pd.Series, pd.Series]:
    """Parse each value alone (epoch number or date text) to a UTC microsecond timestamp.

    Numbers are read in `rules.timestamp_unit` (auto: the unit that puts the value in range),
    text as ISO-8601 (naive text is UTC). Nothing outside [timestamp_min, timestamp_max) is
    converted, so no value can overflow or land in a wrong year.

    Returns:
        (timestamps, NaT where rejected; the reason per value, None where accepted).
    """
    rules = rules or InputRules()
    lo, hi = _micros(rules.timestamp_min), _micros(rules.timestamp_max)
    text = values.astype("string").str.strip()
    number = _numbers(text)
    is_number = number.notna()
    micros = pd.Series(np.nan, index=values.index, dtype="float64")
    reason = pd.Series(None, index=values.index, dtype="object")
    inside = lambda m: (m >= lo) & (m < hi)  # noqa: E731
    finite = is_number & np.isfinite(number)
    reason[is_number & ~finite] = "timestamp not finite"
    units = list(_MICROS) if rules.timestamp_unit == "auto" else [rules.timestamp_unit]
    for unit in units:
        scaled = number * _MICROS[unit]
        take = finite & micros.isna() & inside(scaled)
        micros[take] = scaled[take]
    missed = finite & micros.isna()
    reason[missed] = "timestamp out of range"
    if rules.timestamp_unit != "auto":  # say which unit would have read it
        for unit in _MICROS:
            hint = missed & reason.eq("timestamp out of range") & inside(number * _MICROS[unit])
            reason[hint] = f"timestamp out of range: looks like {_UNIT_NAMES[unit]} (inputs.rules.timestamp_unit)"
    dated = ~is_number & text.notna() & (text != "")
    from_text = _text_times(text.where(dated))
    text_ok = dated & from_text.notna() & inside(from_text.astype("float64"))
    reason[dated & from_text.isna()] = "unparseable timestamp"
    reason[dated & from_text.notna() & ~text_ok] = "timestamp out of range"
    reason[~is_number & ~dated] = "null timestamp"
    whole = micros.round().astype("Int64")  # in range, so below 2**53: exact
    whole[text_ok] = from_text[text_ok]
    instants = np.full(len(whole), np.datetime64("NaT"), dtype="datetime64[us]")
    ok = whole.notna().to_numpy()
    instants[ok] = whole[ok].to_numpy(dtype="int64").astype("datetime64[us]")
    stamps = pd.Series(pd.DatetimeIndex(instants).tz_localize("UTC"), index=values.index)
    return stamps, reason.astype(object).where(reason.notna(), None)


def _as_checks(reasons: pd.Series) -> list[tuple[str, pd.Series]]:
    """A per-row reason column as checks of equal priority (the reasons exclude each other)."""
    return [(name, reasons.eq(name)) for name in reasons.dropna().unique()]


def _ranged(values: pd.Series, raw: pd.Series, name: str, low: float, high: float) -> pd.Series:
    """The reason per row a numeric column is unusable (None when fine or absent)."""
    reason = pd.Series(None, index=values.index, dtype="object")
    reason[values.isna() & ~_blank(raw)] = f"unparseable {name}"
    reason[values.notna() & ~np.isfinite(values)] = f"{name} not finite"
    out = values.notna() & np.isfinite(values) & ((values < low) | (values > high))
    reason[out] = f"{name} out of range [{low:g}, {high:g}] (inputs.rules)"
    return reason.astype(object).where(reason.notna(), None)


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
    """Each row as read, as JSON; a malformed CSV row as its raw text (its fields mean nothing)."""
    raw = batch[columns].astype("object").where(batch[columns].notna(), None)
    records = [json.dumps(dict(zip(columns, row)), default=str) for row in raw.itertuples(index=False)]
    if MALFORMED in batch.columns:
        for i, text in enumerate(batch[MALFORMED].tolist()):
            if isinstance(text, str):
                records[i] = json.dumps({"raw": text})
    return records


def _too_long(ids: pd.Series, rules: InputRules) -> pd.Series:
    return ids.str.len().fillna(0) > rules.max_id_chars


def _malformed(batch: pd.DataFrame) -> pd.Series:
    if MALFORMED not in batch.columns:
        return pd.Series(False, index=batch.index)
    return batch[MALFORMED].notna()


def classify_interactions(
    batch: pd.DataFrame, known_item_ids: Collection[str] | None = None, rules: InputRules | None = None
) -> pd.DataFrame:
    """Parse and check interaction rows.

    Args:
        batch: raw rows (string values) holding whole users, so duplicates are
            found within the batch. Columns: INTERACTION_REQUIRED, any of
            INTERACTION_OPTIONAL, optionally `_source_file`, and `_known_item`
            (True where the item is in the accepted catalogue: Spark joins it on,
            so no worker ever holds the catalogue).
        known_item_ids: accepted catalogue item ids, when `batch` has no `_known_item`.
        rules: what counts as a usable timestamp and rating (default `InputRules()`).

    Returns:
        One row per input row: user_id, item_id, timestamp, rating, event_type (parsed),
        reject_reason (None if usable), source_file, record (raw row as JSON).
    """
    raw_columns = [c for c in (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL) if c in batch.columns]
    user = batch["user_id"].astype("string").str.strip()
    item = batch["item_id"].astype("string").str.strip()
    rules = rules or InputRules()
    timestamp, timestamp_reason = parse_timestamps(batch["timestamp"], rules)
    rating_raw = batch["rating"] if "rating" in batch.columns else pd.Series(np.nan, index=batch.index)
    rating = _numbers(rating_raw.astype("string").str.strip())
    event_type = (
        batch["event_type"].astype("string")
        if "event_type" in batch.columns
        else pd.Series(pd.NA, index=batch.index, dtype="string")
    )

    key = pd.DataFrame({"u": user, "i": item, "t": timestamp})
    records = _records(batch, raw_columns)
    checks = [
        (MALFORMED_ROW, _malformed(batch)),
        ("null user_id", _blank(batch["user_id"])),
        ("null item_id", _blank(batch["item_id"])),
        (f"id longer than {rules.max_id_chars} characters", _too_long(user, rules) | _too_long(item, rules)),
        *_as_checks(timestamp_reason),
        *_as_checks(_ranged(rating, rating_raw, "rating", rules.rating_min, rules.rating_max)),
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


def classify_items(batch: pd.DataFrame, rules: InputRules | None = None) -> pd.DataFrame:
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
    rules = rules or InputRules()
    year = _numbers(year_raw.astype("string").str.strip())
    year_reason = _ranged(year, year_raw, "year", rules.year_min, rules.year_max)
    year_reason[year_reason.isna() & year.notna() & (year % 1 != 0)] = "unparseable year"
    item = text("item_id")
    records = _records(batch, raw_columns)
    checks = [
        (MALFORMED_ROW, _malformed(batch)),
        ("null item_id", _blank(batch["item_id"])),
        (f"id longer than {rules.max_id_chars} characters", _too_long(item, rules)),
        ("empty title", _blank(batch["title"])),
        *_as_checks(year_reason),
        ("duplicate item_id", _later_duplicates(item.to_frame(), records)),
    ]
    return pd.DataFrame(
        {
            "item_id": item.astype(object),
            "title": text("title").astype(object),
            "genres": text("genres").astype(object),
            "year": year.where(year_reason.isna()).round().astype("Int64"),  # only in-range values convert
            "description": text("description").astype(object),
            "reject_reason": _first_reason(checks, batch.index),
            "source_file": batch[SOURCE_FILE] if SOURCE_FILE in batch.columns else None,
            "record": records,
        }
    )
