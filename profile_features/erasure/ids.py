"""The ids of an erasure request: read from a file and normalised as validation normalises ids."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from profile_features.validation_rules import normalize_ids

__all__ = ["normalize_user_ids", "read_user_ids"]


def normalize_user_ids(values: Iterable) -> list[str]:
    """Unique ids, sorted, each stripped of INVISIBLE characters at both ends (`validation_rules.normalize_ids`:
    the same identity validation joins on); empty values are dropped."""
    series = normalize_ids(pd.Series([str(v) for v in values if v is not None and not pd.isna(v)], dtype="object"))
    return sorted({v for v in series.dropna() if v})


def read_user_ids(path: str | Path) -> list[str]:
    """The ids in `path`: Parquet (a `user_id` column), CSV (a header with a `user_id` column) or text
    (one id a line).

    Raises:
        ValueError: a Parquet or CSV file without a `user_id` column.
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq") or path.is_dir():
        frame = pd.read_parquet(path)
        return _column(frame, path)
    if path.suffix.lower() == ".csv":
        return _column(pd.read_csv(path, dtype=str, keep_default_na=False), path)
    return normalize_user_ids(path.read_text(encoding="utf-8").splitlines())


def _column(frame: pd.DataFrame, path: Path) -> list[str]:
    names = {str(c).strip().lstrip("\ufeff"): c for c in frame.columns}
    if "user_id" not in names:
        raise ValueError(f"{path}: no user_id column (found {list(names)})")
    return normalize_user_ids(frame[names["user_id"]].astype(str))
