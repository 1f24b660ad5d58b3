"""Writing the stream's rows to the Feast online store through Feast's own write path, newest wins.

Each Spark task writes its partition with `FeatureStore.write_to_online_store` (one store per Python
worker). Feast's SQLite store overwrites whatever is there, so a row whose event time is older than the
value already online (a batch `materialize` of a later snapshot, a slower writer) is dropped first: an
older micro-batch never overwrites a newer value. Timestamps compare in whole seconds, as Feast keeps them.
"""

from __future__ import annotations

import functools

import pandas as pd

__all__ = ["online_writer", "write_partition"]


@functools.lru_cache(maxsize=4)
def _store(repo: str, store_yaml: str | None):
    from pathlib import Path

    from feast import FeatureStore

    return FeatureStore(repo_path=repo, fs_yaml_file=Path(store_yaml) if store_yaml else None)


def _online_seconds(store, view: str, join_key: str, feature: str, keys: list[str]) -> list[int]:
    """The event time (epoch seconds, 0 when absent) of each key's value online."""
    from feast.online_response import TIMESTAMP_POSTFIX

    response = store.get_online_features(
        features=[f"{view}:{feature}"], entity_rows=[{join_key: k} for k in keys]
    ).to_dict(include_event_timestamps=True)
    return [int(s or 0) for s in response[feature + TIMESTAMP_POSTFIX]]


def write_partition(frame: pd.DataFrame, repo: str, store_yaml: str | None, view: str) -> pd.DataFrame:
    """Write one partition's rows (USER_STUDENT columns) to `view`; returns one row of counts."""
    if frame.empty:
        return pd.DataFrame({"written": [0], "stale": [0]})
    store = _store(repo, store_yaml)
    feature_view = store.get_feature_view(view)
    join_key = feature_view.entity_columns[0].name
    frame = frame.rename(columns={"user_id": join_key}) if join_key != "user_id" else frame
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    online = _online_seconds(store, view, join_key, feature_view.features[0].name, frame[join_key].tolist())
    fresh = (stamps.astype("int64") // 10**9).to_numpy() >= online
    rows = frame[fresh].assign(event_timestamp=stamps[fresh])
    wanted = [join_key, "event_timestamp", *[f.name for f in feature_view.features]]
    if len(rows):
        store.write_to_online_store(view, rows[wanted])
    return pd.DataFrame({"written": [int(fresh.sum())], "stale": [int((~fresh).sum())]})


def online_writer(repo: str, store_yaml: str | None, view: str):
    """The mapInPandas function that writes each batch of a partition and yields its counts."""

    def write(batches):
        for batch in batches:
            yield write_partition(batch, repo, store_yaml, view)

    return write
