"""Materialize a Feast repo over the window its data covers, and say what each view loaded.

`feast materialize-incremental` starts a never-materialized view at now - ttl: snapshots older than
the ttl load nothing, the command exits 0, and every online read is `None`. `materialize_repo` starts
each never-materialized view at its source's earliest event timestamp, continues the others from
their last materialization, and counts the source rows each window holds, so an empty first load is
an error a scheduler sees rather than a silent success.

Counting streams the source's timestamp column batch by batch (memory does not grow with rows).
Sources it cannot read as files (a Spark metastore table) are loaded but not counted; give their
first window's start with `start`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from profile_features import storage

__all__ = ["ViewLoad", "EmptyMaterialization", "materialize_repo", "source_span"]

logger = logging.getLogger(__name__)


class EmptyMaterialization(RuntimeError):
    """A view's first materialization found no source rows in its window."""


@dataclass(frozen=True)
class SourceSpan:
    """What a source holds before `end`: rows on/after `since` (all rows when None), first and last time."""

    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclass(frozen=True)
class ViewLoad:
    """One view's materialization: its window, and the source rows in it (None: not countable)."""

    view: str
    start: datetime
    end: datetime
    first_load: bool
    rows: int | None
    source: str
    source_first: pd.Timestamp | None = None
    source_last: pd.Timestamp | None = None

    def describe(self) -> str:
        kind = "first load" if self.first_load else "incremental"
        counted = "rows not counted (not a file source)" if self.rows is None else f"{self.rows} source rows"
        return f"{self.view}: {kind} {self.start:%Y-%m-%dT%H:%M:%S} .. {self.end:%Y-%m-%dT%H:%M:%S}, {counted}"


def _utc(values: pd.Series) -> pd.Series:
    values = pd.to_datetime(values)
    return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")


def source_span(path: str, timestamp_field: str, end: datetime, since: datetime | None = None) -> SourceSpan:
    """Rows of the parquet file/folder `path` (hive partitions allowed) with `since <= ts < end`,
    and its first/last timestamps before `end`, streaming the one column."""
    import pyarrow.dataset as ds

    fs, inner = storage.filesystem(path)
    dataset = ds.dataset(inner, filesystem=fs, format="parquet", partitioning="hive")
    end_ts, since_ts = pd.Timestamp(end), None if since is None else pd.Timestamp(since)
    rows, first, last = 0, None, None
    for batch in dataset.to_batches(columns=[timestamp_field]):
        stamps = _utc(batch.column(0).to_pandas())
        stamps = stamps[stamps.notna() & (stamps < end_ts)]
        if stamps.empty:
            continue
        first = stamps.min() if first is None else min(first, stamps.min())
        last = stamps.max() if last is None else max(last, stamps.max())
        rows += int((stamps >= since_ts).sum()) if since_ts is not None else len(stamps)
    return SourceSpan(rows, first, last)


def _source_path(view, repo: Path) -> str | None:
    path = getattr(view.batch_source, "path", None)
    if not path:
        return None
    return path if storage.is_uri(path) or Path(path).is_absolute() else str(repo / path)


def _last_end(view) -> datetime | None:
    intervals = view.materialization_intervals
    return max(end for _, end in intervals) if intervals else None


def materialize_repo(
    repo: str | Path,
    end: datetime | None = None,
    start: datetime | None = None,
    store_yaml: str | Path | None = None,
    views: list[str] | None = None,
) -> list[ViewLoad]:
    """Materialize the repo's (applied) batch feature views up to `end` (default: now).

    Never-materialized views load from `start` or, by default, their source's earliest timestamp;
    the others continue from their last materialization end, as `materialize-incremental` does.

    Raises:
        EmptyMaterialization: after loading, when a view's first load had no source rows in its window
            (names the view, the source, the window and where the source's data lies).
        ValueError: a never-materialized view whose source cannot be read as files, without `start`.
    """
    from feast import FeatureStore

    repo = Path(repo)
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=Path(store_yaml) if store_yaml else None)
    end = end or datetime.now(timezone.utc) + timedelta(seconds=1)
    end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
    chosen = [v for v in store.list_feature_views() if views is None or v.name in views]
    loads = []
    for view in chosen:
        path, since = _source_path(view, repo), _last_end(view)
        source = path or getattr(view.batch_source, "table", None) or view.batch_source.name
        if path is None:
            if since is None and start is None:
                raise ValueError(
                    f"feature view {view.name!r} reads {source!r}, which cannot be scanned for its first "
                    "timestamp: pass start (--start) for its first load"
                )
            loads.append(ViewLoad(view.name, since or start, end, since is None, None, source))
            continue
        if not storage.exists(path):
            raise ValueError(
                f"feature view {view.name!r} reads {path}, which does not exist: run the job that writes it, "
                "or leave its group out of the repo's definitions"
            )
        span = source_span(path, view.batch_source.timestamp_field, end, since or start)
        first = since is None
        # Whole seconds, one before the first row: offline stores compare against a formatted start.
        earliest = None if span.first is None else (span.first.floor("s") - pd.Timedelta(seconds=1)).to_pydatetime()
        window_start = since or start or earliest or end
        loads.append(ViewLoad(view.name, window_start, end, first, span.rows, source, span.first, span.last))
    for load in loads:
        logger.info("materialize %s", load.describe())
        if load.first_load:
            store.materialize(load.start, load.end, feature_views=[load.view])
        elif load.rows != 0:
            store.materialize_incremental(load.end, feature_views=[load.view])
    empty = [load for load in loads if load.rows == 0]
    for load in empty:
        where = (
            f"its data lies {load.source_first:%Y-%m-%dT%H:%M:%S} .. {load.source_last:%Y-%m-%dT%H:%M:%S}"
            if load.source_first is not None
            else "it has no rows before the end"
        )
        level = logging.WARNING if load.first_load else logging.INFO
        logger.log(level, "%s: nothing to load from %s (%s)", load.describe(), load.source, where)
    if empty_first := [load for load in empty if load.first_load]:
        raise EmptyMaterialization(
            "first materialization loaded no rows for "
            + "; ".join(f"{load.view} (source {load.source})" for load in empty_first)
            + ": its online features read None. Check the source path and the end time"
        )
    return loads
