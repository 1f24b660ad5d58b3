"""Materialize a Feast repo over the window its data covers, and check what each view loaded.

`feast materialize-incremental` starts a never-materialized view at now - ttl: snapshots older than
the ttl load nothing, the command exits 0, and every online read is `None`. It also continues every
other view from the end its registry remembers, whatever data the view's source holds now: after
`make demo`, a repo pointed at your own (older) data loads nothing and exits 0.

`materialize_repo` starts each never-materialized view at its source's earliest event timestamp,
continues the others from their last materialization, counts the source rows each window holds,
and then reads a sample of entities back from the online store (`online_check`): a view whose
online rows are not the source's newest fails, naming the view, the source and the fix (`reload`:
load each view again from its source's first row; or an explicit `start`). An empty first load fails
the same way, so a scheduler sees an exit code rather than a silent success.

Counting streams the source's timestamp and join-key columns batch by batch (memory does not grow with
rows; the read-back sample is `SAMPLE_ENTITIES` entities). Sources it cannot read as files (a Spark
metastore table) are loaded but neither counted nor checked; give their first window's start with
`start`.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import pandas as pd

from profile_features import storage
from profile_features.feast.online_check import OnlineCheck, check_online
from profile_features.spark.commit import recover_table
from profile_features.spark.commit_fs import local_fs_for

__all__ = [
    "EmptyMaterialization",
    "MaterializationError",
    "OnlineStoreBehind",
    "SAMPLE_ENTITIES",
    "ViewLoad",
    "materialize_repo",
    "source_span",
]

logger = logging.getLogger(__name__)

# Entities per view read back from the online store after loading.
SAMPLE_ENTITIES = 64


class MaterializationError(RuntimeError):
    """A load left a view's online features unusable (the CLI exits 1)."""


class EmptyMaterialization(MaterializationError):
    """A view's first load (or a requested window) found no source rows."""


class OnlineStoreBehind(MaterializationError):
    """The online store does not hold a view's newest source rows after loading."""


@dataclass(frozen=True)
class SourceSpan:
    """What a source holds before `end`: rows on/after `since` (all rows when None), first and last time,
    and the newest time of a sample of entities (join-key tuple -> time)."""

    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    latest: dict[tuple, pd.Timestamp] = field(default_factory=dict)


LoadKind = Literal["first load", "incremental", "reload", "window"]


@dataclass(frozen=True)
class ViewLoad:
    """One view's materialization: its window, the source rows in it (None: not countable), and the
    read-back check of the online store (None: not checked).

    kind: "first load" (never materialized: from the source's first row), "incremental" (from the
    registry's last end), "reload" (asked for: from the source's first row), "window" (from `start`).
    """

    view: str
    start: datetime
    end: datetime
    kind: LoadKind
    rows: int | None
    source: str
    source_first: pd.Timestamp | None = None
    source_last: pd.Timestamp | None = None
    check: OnlineCheck | None = None

    @property
    def first_load(self) -> bool:
        return self.kind == "first load"

    def describe(self) -> str:
        counted = "rows not counted (not a file source)" if self.rows is None else f"{self.rows} source rows"
        text = f"{self.view}: {self.kind} {self.start:%Y-%m-%dT%H:%M:%S} .. {self.end:%Y-%m-%dT%H:%M:%S}, {counted}"
        return text if self.check is None else f"{text}; {self.check.describe()}"

    def where(self) -> str:
        """Where the source's data lies (for error messages)."""
        if self.source_first is None:
            return "it has no rows before the end"
        return f"its data lies {self.source_first:%Y-%m-%dT%H:%M:%S} .. {self.source_last:%Y-%m-%dT%H:%M:%S}"


def _utc(values: pd.Series) -> pd.Series:
    values = pd.to_datetime(values)
    return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")


def source_span(
    path: str,
    timestamp_field: str,
    end: datetime,
    since: datetime | None = None,
    key_columns: list[str] | None = None,
    sample: int = SAMPLE_ENTITIES,
) -> SourceSpan:
    """Rows of the parquet file/folder `path` (hive partitions allowed) with `since <= ts < end`, its
    first/last timestamps before `end`, and the newest timestamp before `end` of the first `sample`
    entities (by `key_columns`) met in the stream; reads only those columns, batch by batch."""
    import pyarrow.dataset as ds

    fs, inner = storage.filesystem(path)
    dataset = ds.dataset(inner, filesystem=fs, format="parquet", partitioning="hive")
    end_ts, since_ts = pd.Timestamp(end), None if since is None else pd.Timestamp(since)
    keys = list(key_columns or [])
    rows, first, last, latest = 0, None, None, {}
    for batch in dataset.to_batches(columns=[timestamp_field, *keys]):
        frame = batch.to_pandas()
        stamps = _utc(frame[timestamp_field])
        kept = stamps.notna() & (stamps < end_ts)
        stamps = stamps[kept]
        if stamps.empty:
            continue
        first = stamps.min() if first is None else min(first, stamps.min())
        last = stamps.max() if last is None else max(last, stamps.max())
        rows += int((stamps >= since_ts).sum()) if since_ts is not None else len(stamps)
        if keys:
            newest = stamps.groupby([frame.loc[kept, key] for key in keys]).max()
            for entity, stamp in newest.items():
                entity = entity if isinstance(entity, tuple) else (entity,)
                if entity in latest:
                    latest[entity] = max(latest[entity], stamp)
                elif len(latest) < sample:
                    latest[entity] = stamp
    return SourceSpan(rows, first, last, latest)


def _source_path(view, repo: Path) -> str | None:
    path = getattr(view.batch_source, "path", None)
    if not path:
        return None
    return path if storage.is_uri(path) or Path(path).is_absolute() else str(repo / path)


def _source_keys(view) -> list[str]:
    """The source columns of the view's join keys (a field mapping renames source -> feature names)."""
    renamed = {name: column for column, name in (view.batch_source.field_mapping or {}).items()}
    return [renamed.get(column.name, column.name) for column in view.entity_columns]


def _last_end(view) -> datetime | None:
    intervals = view.materialization_intervals
    return max(end for _, end in intervals) if intervals else None


def settle_source(path: str) -> None:
    """Settle a commit to a local source table killed part way (spark/commit.py) before Feast reads it, so a
    load never misses a partition a dead writer had moved aside. Remote tables are settled by the jobs'
    readers (Spark), not here."""
    if "://" not in path or path.startswith("file:"):
        recover_table(local_fs_for(path), path)


def _plan(view, repo: Path, end: datetime, start: datetime | None, reload: bool) -> tuple[ViewLoad, SourceSpan | None]:
    """The window to load `view` over, and what its source holds (None: not a file source)."""
    path, since = _source_path(view, repo), _last_end(view)
    kind: LoadKind = "window" if start else "reload" if reload else "first load" if since is None else "incremental"
    source = path or getattr(view.batch_source, "table", None) or view.batch_source.name
    if path is None:
        if kind in ("first load", "reload"):
            raise ValueError(
                f"feature view {view.name!r} reads {source!r}, which cannot be scanned for its first "
                f"timestamp: pass start (--start) for its {kind}"
            )
        return ViewLoad(view.name, start or since, end, kind, None, source), None
    settle_source(path)
    if not storage.exists(path):
        raise ValueError(
            f"feature view {view.name!r} reads {path}, which does not exist: run the job that writes it, "
            "or leave its group out of the repo's definitions"
        )
    window_since = start if kind == "window" else since if kind == "incremental" else None
    keys = _source_keys(view) if view.online else []
    span = source_span(path, view.batch_source.timestamp_field, end, window_since, keys)
    # Whole seconds, one before the first row: offline stores compare against a formatted start.
    earliest = None if span.first is None else (span.first.floor("s") - pd.Timedelta(seconds=1)).to_pydatetime()
    window_start = window_since or earliest or end
    return ViewLoad(view.name, window_start, end, kind, span.rows, source, span.first, span.last), span


def _quietly(call, *args, **kwargs) -> None:
    """Run a Feast call whose progress `print`s to stdout in ANSI colour, keeping it for `-v` only: the log line
    before each load says the same, and stdout stays the command's own summary."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        call(*args, **kwargs)
    if printed.getvalue().strip():
        logger.debug("feast: %s", printed.getvalue().strip())


def materialize_repo(
    repo: str | Path,
    end: datetime | None = None,
    start: datetime | None = None,
    store_yaml: str | Path | None = None,
    views: list[str] | None = None,
    reload: bool = False,
) -> list[ViewLoad]:
    """Materialize the repo's (applied) batch feature views up to `end` (default: now), then check the
    online store holds each file source's newest rows (a sample of `SAMPLE_ENTITIES` entities per view).

    Windows: with `start`, every chosen view loads `[start, end)`; with `reload`, `[its source's first
    row, end)`; otherwise never-materialized views load from their source's first row and the others
    continue from their last materialization end, as `materialize-incremental` does.

    Raises:
        EmptyMaterialization: after loading, when a first load, reload or `start` window had no source rows
            (names the view, the source, the window and where the source's data lies).
        OnlineStoreBehind: after loading, when the online store lacks a view's newest source rows (e.g. the
            registry's intervals already cover new data with older timestamps): names the fix, `reload`.
        ValueError: a view whose source cannot be read as files, without `start`, on a first load or reload.
    """
    from feast import FeatureStore

    repo = Path(repo)
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=Path(store_yaml) if store_yaml else None)
    end = end or datetime.now(timezone.utc) + timedelta(seconds=1)
    end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
    start = start if start is None or start.tzinfo else start.replace(tzinfo=timezone.utc)
    chosen = [v for v in store.list_feature_views() if views is None or v.name in views]
    if views is not None and (unknown := sorted(set(views) - {v.name for v in chosen})):
        raise ValueError(f"no applied feature view named {', '.join(unknown)} in {repo} (run `feast apply` first?)")
    plans = [(view, *_plan(view, repo, end, start, reload)) for view in chosen]
    for _, load, _ in plans:
        logger.info("materialize %s", load.describe())
        if load.kind != "incremental":
            _quietly(store.materialize, load.start, load.end, feature_views=[load.view])
        elif load.rows != 0:
            _quietly(store.materialize_incremental, load.end, feature_views=[load.view])
    loads = [
        load if span is None or not span.latest else replace(load, check=check_online(store, view, span.latest))
        for view, load, span in plans
    ]
    empty = [load for load in loads if load.rows == 0 and load.kind != "incremental"]
    if empty:
        raise EmptyMaterialization(
            "first materialization loaded no rows for "
            + "; ".join(
                f"{load.view} (source {load.source}, {load.kind} {_window(load)}, {load.where()})" for load in empty
            )
            + ": its online features read None. Check the source path and the end time"
        )
    behind = [load for load in loads if load.check is not None and not load.check.ok]
    if behind:
        raise OnlineStoreBehind(
            f"the online store does not hold the newest source rows of {len(behind)} feature view(s):\n"
            + "".join(f"  {_behind(load)}\n" for load in behind)
            + "The registry remembers earlier materializations, not what the sources hold now: rerun with "
            "--reload (each view again from its source's first row) or --start TIME"
        )
    for load in loads:
        if load.kind == "incremental" and load.rows == 0:
            logger.info("%s: nothing new in %s since %s", load.view, load.source, f"{load.start:%Y-%m-%dT%H:%M:%S}")
    return loads


def _window(load: ViewLoad) -> str:
    return f"{load.start:%Y-%m-%dT%H:%M:%S} .. {load.end:%Y-%m-%dT%H:%M:%S}"


def _behind(load: ViewLoad) -> str:
    found = f"{load.kind} {_window(load)} found {load.rows} rows, {load.where()}"
    return f"{load.view} (source {load.source}): {found}; {load.check.describe()}"
