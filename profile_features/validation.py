"""Input validation: every row read is either accepted or rejected with a reason.

The Spark job casts every input column to string first, so these functions see
the values exactly as read (CSV text, or Parquet values rendered as text) and one
code path serves both formats. Rows are never dropped here: `classify_*` returns
each input row once, with `reject_reason` null for usable rows. The value rules (ids,
empty text, null markers, timestamps) live in `validation_rules`, one definition each.

Two steps, so Spark runs Python once per partition, never per group: `check_*_rows` judges each row
alone (its own values, and for interactions the `_known_item` flag joined on); the duplicate rule then
keeps, of the rows that passed, the first per key in raw-record order (`later_duplicates` here,
a window in the Spark stage). A bad value in an optional column (rating, year) nulls that field
with its reason in `nulled_reason`; it does not cost the row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Collection, Iterable

import numpy as np
import pandas as pd

from profile_features import storage
from profile_features.config import InputRules, InputsConfig, TableInput
from profile_features.validation_rules import (
    clean_text,
    is_empty_text,
    normalize_ids,
    null_markers,
    numbers,
    parse_timestamps,
)

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
    "NATIVE_MICROS",
    "DUPLICATE_INTERACTION",
    "DUPLICATE_ITEM",
    "UNKNOWN_ITEM",
    "require_columns",
    "parse_timestamps",
    "check_interaction_rows",
    "check_item_rows",
    "later_duplicates",
    "classify_interactions",
    "classify_items",
    "header_names",
    "local_header",
    "preflight_inputs",
]

INTERACTION_REQUIRED = ("user_id", "item_id", "timestamp")
INTERACTION_OPTIONAL = ("rating", "event_type")
ITEM_REQUIRED = ("item_id", "title")
ITEM_OPTIONAL = ("genres", "year", "description")
SOURCE_FILE = "_source_file"
MALFORMED = "_malformed"  # the raw text of a CSV row whose field count differs from the header
MALFORMED_ROW = "malformed CSV row (field count differs from the header)"
KNOWN_ITEM = "_known_item"  # joined on by the Spark stage: is the row's item in the accepted catalogue
# Beside a timestamp column read as text from a typed source (Parquet), its exact epoch microseconds: the
# Spark stage's native path takes them instead of parsing the text again (the text stays for the record).
NATIVE_MICROS = "_micros_"
DUPLICATE_INTERACTION = "duplicate interaction"
DUPLICATE_ITEM = "duplicate item_id"
UNKNOWN_ITEM = "unknown item_id"
LINE_BREAK = "line break inside {} (an unclosed CSV quote?)"
REPLACEMENT = "\ufffd"  # what the CSV reader puts in place of bytes that are not UTF-8


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


def _as_checks(reasons: pd.Series) -> list[tuple[str, pd.Series]]:
    """A per-row reason column as checks of equal priority (the reasons exclude each other)."""
    return [(name, reasons.eq(name)) for name in reasons.dropna().unique()]


def _ranged(values: pd.Series, raw: pd.Series, name: str, low: float, high: float) -> pd.Series:
    """The reason per row a numeric column is unusable (None when fine, absent or a null marker)."""
    reason = pd.Series(None, index=values.index, dtype="object")
    reason[values.isna() & ~null_markers(raw)] = f"unparseable {name}"
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


def later_duplicates(classified: pd.DataFrame, key: list[str], reason: str) -> pd.DataFrame:
    """`classified` with `reason` set on every repeat of a key but the first among the rows otherwise
    accepted, "first" in raw-record order (Spark does not order rows, so the same input always keeps the
    same row; a rejected row never displaces a usable one)."""
    usable = classified[classified.reject_reason.isna()]
    ordered = usable.assign(_file=usable.source_file.fillna("")).sort_values(["record", "_file"], kind="stable")
    repeated = ordered.index[ordered[key].astype(object).duplicated(keep="first")]
    out = classified.copy()
    out.loc[repeated, "reject_reason"] = reason
    return out


def _records(batch: pd.DataFrame, columns: list[str]) -> list[str]:
    """Each row as read, as JSON; a malformed CSV row as its raw text (its fields mean nothing)."""
    if batch.empty:
        return []
    raw = batch[columns].astype("object").where(batch[columns].notna(), None)
    # One vectorised encoder call; JSON escapes line breaks inside values, so the lines are the rows.
    records = raw.to_json(orient="records", lines=True, force_ascii=False).rstrip("\n").split("\n")
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


def _line_break(batch: pd.DataFrame, names: Iterable[str]) -> pd.Series:
    """True where a one-line field (an id, a timestamp) holds a line break: the mark of a quote left open,
    which makes the CSV reader swallow the following lines into this row."""
    broken = pd.Series(False, index=batch.index)
    for name in names:
        broken |= normalize_ids(batch[name]).str.contains("\n|\r", regex=True).fillna(False).astype(bool)
    return broken


def _replaced(batch: pd.DataFrame, columns: list[str]) -> pd.Series:
    """True where a value holds U+FFFD (bytes that were not UTF-8, replaced by the reader)."""
    hit = pd.Series(False, index=batch.index)
    for name in columns:
        hit |= batch[name].astype("string").str.contains(REPLACEMENT, regex=False).fillna(False).astype(bool)
    return hit


def _optional_text(batch: pd.DataFrame, name: str) -> pd.Series:
    """An optional text column, stripped; null markers and invisible-only values are empty."""
    if name not in batch.columns:
        return pd.Series("", index=batch.index, dtype="string")
    text = clean_text(batch[name])
    return text.where(~null_markers(text) & ~is_empty_text(text), "").fillna("")


def _known(batch: pd.DataFrame, item: pd.Series, known_item_ids: Collection[str] | None) -> pd.Series:
    if KNOWN_ITEM in batch.columns:
        return batch[KNOWN_ITEM].astype("boolean").fillna(False).astype(bool)
    if known_item_ids is None:
        raise ValueError(f"classify_interactions needs a {KNOWN_ITEM} column or known_item_ids")
    known = set(normalize_ids(pd.Series(list(known_item_ids), dtype="object")).dropna())
    return item.isin(known).fillna(False).astype(bool)


def check_interaction_rows(
    batch: pd.DataFrame, known_item_ids: Collection[str] | None = None, rules: InputRules | None = None
) -> pd.DataFrame:
    """Parse and check each interaction row alone (every rule but the duplicate one).

    Args:
        batch: raw rows (string values). Columns: INTERACTION_REQUIRED, any of INTERACTION_OPTIONAL,
            optionally `_source_file`, `_malformed`, and `_known_item` (True where the item is in the
            accepted catalogue: Spark joins it on, so no worker ever holds the catalogue).
        known_item_ids: accepted catalogue item ids, when `batch` has no `_known_item`.
        rules: what counts as a usable timestamp and rating (default `InputRules()`).

    Returns:
        One row per input row: user_id, item_id (normalised), timestamp, rating, event_type (parsed),
        reject_reason (None if usable), source_file, record (raw row as JSON), nulled_reason (why an
        optional value was nulled), replaced_bytes (a value held U+FFFD).
    """
    raw_columns = [c for c in (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL) if c in batch.columns]
    user = normalize_ids(batch["user_id"])
    item = normalize_ids(batch["item_id"])
    rules = rules or InputRules()
    timestamp, timestamp_reason = parse_timestamps(batch["timestamp"], rules)
    rating_raw = batch["rating"] if "rating" in batch.columns else pd.Series(pd.NA, index=batch.index)
    rating = numbers(rating_raw)
    rating_reason = _ranged(rating, rating_raw, "rating", rules.rating_min, rules.rating_max)
    event_type = _optional_text(batch, "event_type")
    records = _records(batch, raw_columns)
    checks = [
        # before the field count: an open quote makes the row malformed too, and this says why
        (LINE_BREAK.format("user_id, item_id or timestamp"), _line_break(batch, INTERACTION_REQUIRED)),
        (MALFORMED_ROW, _malformed(batch)),
        ("null user_id", is_empty_text(user)),
        ("null item_id", is_empty_text(item)),
        (f"id longer than {rules.max_id_chars} characters", _too_long(user, rules) | _too_long(item, rules)),
        *_as_checks(timestamp_reason),
        (UNKNOWN_ITEM, ~_known(batch, item, known_item_ids)),
    ]
    return pd.DataFrame(
        {
            "user_id": user.astype(object),
            "item_id": item.astype(object),
            "timestamp": timestamp,
            "rating": rating.where(rating_reason.isna()).astype("float64"),
            "event_type": event_type.where(event_type != "", "interaction").astype(object),
            "reject_reason": _first_reason(checks, batch.index),
            "source_file": batch[SOURCE_FILE] if SOURCE_FILE in batch.columns else None,
            "record": records,
            "nulled_reason": rating_reason,
            "replaced_bytes": _replaced(batch, raw_columns),
        }
    )


def classify_interactions(
    batch: pd.DataFrame, known_item_ids: Collection[str] | None = None, rules: InputRules | None = None
) -> pd.DataFrame:
    """`check_interaction_rows`, then the duplicate rule: `batch` holds every row of its users."""
    checked = check_interaction_rows(batch, known_item_ids, rules)
    return later_duplicates(checked, ["user_id", "item_id", "timestamp"], DUPLICATE_INTERACTION)


def check_item_rows(batch: pd.DataFrame, rules: InputRules | None = None) -> pd.DataFrame:
    """Parse and check each catalogue row alone (every rule but the duplicate one).

    Returns:
        item_id, title, genres, year (Int64), description, reject_reason, source_file, record,
        nulled_reason, replaced_bytes.
    """
    raw_columns = [c for c in (*ITEM_REQUIRED, *ITEM_OPTIONAL) if c in batch.columns]
    year_raw = batch["year"] if "year" in batch.columns else pd.Series(pd.NA, index=batch.index)
    rules = rules or InputRules()
    year = numbers(year_raw)
    year_reason = _ranged(year, year_raw, "year", rules.year_min, rules.year_max)
    year_reason[year_reason.isna() & year.notna() & (year % 1 != 0)] = "unparseable year"
    item = normalize_ids(batch["item_id"])
    title = clean_text(batch["title"])
    checks = [
        (LINE_BREAK.format("item_id"), _line_break(batch, ["item_id"])),
        (MALFORMED_ROW, _malformed(batch)),
        ("null item_id", is_empty_text(item)),
        (f"id longer than {rules.max_id_chars} characters", _too_long(item, rules)),
        ("empty title", is_empty_text(title)),
    ]
    return pd.DataFrame(
        {
            "item_id": item.astype(object),
            "title": title.fillna("").astype(object),
            "genres": _optional_text(batch, "genres").astype(object),
            "year": year.where(year_reason.isna()).round().astype("Int64"),  # only in-range values convert
            "description": _optional_text(batch, "description").astype(object),
            "reject_reason": _first_reason(checks, batch.index),
            "source_file": batch[SOURCE_FILE] if SOURCE_FILE in batch.columns else None,
            "record": _records(batch, raw_columns),
            "nulled_reason": year_reason,
            "replaced_bytes": _replaced(batch, raw_columns),
        }
    )


def classify_items(batch: pd.DataFrame, rules: InputRules | None = None) -> pd.DataFrame:
    """`check_item_rows`, then the duplicate rule: `batch` holds every row of its item ids."""
    return later_duplicates(check_item_rows(batch, rules), ["item_id"], DUPLICATE_ITEM)


# --- Preflight: the checks of the inputs' files, headers and column mappings that run in seconds, before Spark
# reads a row. The Spark stage makes the same checks again with the same messages (it is the authority).


def header_names(header: Iterable[str]) -> list[str]:
    """Column names as the stage reads them: stripped, without an Excel byte-order mark."""
    return [name.strip().lstrip("\ufeff").strip() for name in header]


def _is_local(path: str) -> bool:
    return not storage.is_uri(path) or path.lower().startswith("file://")


def _data_files(path: str) -> list[str]:
    """The files Spark would read at `path` (a file, or a folder's files but hidden and _-prefixed ones)."""
    from pyarrow import fs

    filesystem, local = storage.filesystem(path)
    info = filesystem.get_file_info(local)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(path)
    if info.type == fs.FileType.File:
        return [local]
    entries = filesystem.get_file_info(fs.FileSelector(local, recursive=True))
    visible = lambda entry: not any(p.startswith(("_", ".")) for p in entry.path[len(local) :].split("/") if p)  # noqa: E731
    return sorted(e.path for e in entries if e.type == fs.FileType.File and visible(e))


def local_header(table: TableInput) -> list[str] | None:
    """The column names of a local input (a CSV's first line, a Parquet dataset's schema), or None
    when they cannot be read here (the Spark stage then reports why).

    Raises:
        FileNotFoundError: when nothing is at the path.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = _data_files(table.path)
    if not files:
        return []
    filesystem, local = storage.filesystem(table.path)
    try:
        if table.resolved_format == "parquet":
            return list(ds.dataset(local, filesystem=filesystem, format="parquet", partitioning="hive").schema.names)
        with filesystem.open_input_stream(files[0], compression="detect") as stream:
            first = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="").readline()
    except (pa.ArrowException, OSError, ValueError):
        return None
    return next(csv.reader([first], delimiter=table.delimiter), [])


def preflight_inputs(
    inputs: InputsConfig,
    read_header: Callable[[TableInput], list[str] | None],
    only_local: bool = False,
    only_remote: bool = False,
) -> None:
    """Every input's path, header and column mapping, both tables, before any row is read.

    Raises:
        FileNotFoundError: an input path has nothing (all such paths, one line).
        InputSchemaError: a header is empty, a mapped column is absent or a required one is missing
            (all of them, one line, each naming its file).
    """
    missing: list[str] = []
    problems: list[str] = []
    for name, table, required in (
        ("items", inputs.items, ITEM_REQUIRED),
        ("interactions", inputs.interactions, INTERACTION_REQUIRED),
    ):
        if (only_local and not _is_local(table.path)) or (only_remote and _is_local(table.path)):
            continue
        try:
            header = read_header(table)
        except FileNotFoundError:
            missing.append(f"{table.path}: {name} input not found")
            continue
        if header is None:
            continue
        present = header_names(header)
        if not any(present):
            problems.append(f"{table.path}: {name} input has no header row (an empty file or folder?)")
            continue
        absent = [theirs for theirs in table.columns.values() if theirs not in present]
        if absent:
            problems.append(
                f"{table.path}: columns {absent} named in the input's `columns` mapping are not in the file; "
                f"found {present}"
            )
            continue
        renamed = {theirs: ours for ours, theirs in table.columns.items()}
        mapped = [renamed.get(c, c) for c in present if c not in table.columns or c in renamed]
        try:
            require_columns(mapped, required, name, table.path)
        except InputSchemaError as err:
            problems.append(str(err))
    if missing:
        raise FileNotFoundError("; ".join(missing + problems))
    if problems:
        raise InputSchemaError("; ".join(problems))
