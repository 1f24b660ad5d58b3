"""Writing the stream's rows to the Feast online store through Feast's own write path, newest wins.

Each Spark task writes its partition with `FeatureStore.write_to_online_store` (one store per Python
worker). Feast's SQLite store overwrites whatever is there, so a row whose event time is older than the
value already online (a batch `materialize` of a later snapshot, a slower writer) is dropped first: an
older micro-batch never overwrites a newer value. Timestamps compare in whole seconds, as Feast keeps them.
An equal time goes through on every store (a late event changes the history, not the newest time): Feast's
Redis store would skip it, so its stored time is dropped first.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

__all__ = ["ONLINE_COUNTS", "online_writer", "open_store", "opened_project", "write_partition"]


@functools.lru_cache(maxsize=4)
def open_store(repo: str, store_yaml: str | None):
    """The repo's FeatureStore, opened once per process (a Python worker writes many partitions)."""
    from pathlib import Path

    from feast import FeatureStore

    return FeatureStore(repo_path=repo, fs_yaml_file=Path(store_yaml) if store_yaml else None)


def opened_project(repo: str, store_yaml: str | None, views: list[str]) -> str:
    """Open the repo's store in this process (`open_store`) and read each of `views` from its registry (an unknown
    one raises, naming it); the store's project."""
    store = open_store(repo, store_yaml)
    for view in views:
        store.get_feature_view(view)
    return store.project


def _online_seconds(store, view: str, join_key: str, feature: str, keys: list[str]) -> list[int]:
    """The event time (epoch seconds, 0 when absent) of each key's value online."""
    from feast.online_response import TIMESTAMP_POSTFIX

    response = store.get_online_features(
        features=[f"{view}:{feature}"], entity_rows=[{join_key: k} for k in keys]
    ).to_dict(include_event_timestamps=True)
    return [int(s or 0) for s in response[feature + TIMESTAMP_POSTFIX]]


def write_partition(
    frame: pd.DataFrame, repo: str, store_yaml: str | None, view: str, key: str = "user_id"
) -> pd.DataFrame:
    """Write one partition's rows (keyed by `key`, with `event_timestamp` and the view's features) to `view`;
    returns one row of counts."""
    if frame.empty:
        return pd.DataFrame({"view": [view], "written": [0], "stale": [0]})
    store = open_store(repo, store_yaml)
    feature_view = store.get_feature_view(view)
    join_key = feature_view.entity_columns[0].name
    frame = frame.rename(columns={key: join_key}) if join_key != key else frame
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    online = _online_seconds(store, view, join_key, feature_view.features[0].name, frame[join_key].tolist())
    seconds = (stamps.astype("int64") // 10**9).to_numpy()
    fresh = seconds >= online
    rows = frame[fresh].assign(event_timestamp=stamps[fresh])
    wanted = [join_key, "event_timestamp", *[f.name for f in feature_view.features]]
    if len(rows):
        tied = fresh & (seconds == np.asarray(online))
        _let_ties_through(store, feature_view, join_key, frame[join_key][tied].tolist())
        store.write_to_online_store(view, rows[wanted])
    return pd.DataFrame({"view": [view], "written": [int(fresh.sum())], "stale": [int((~fresh).sum())]})


def _let_ties_through(store, feature_view, join_key: str, keys: list[str]) -> None:
    """Feast's Redis store skips a row whose event time equals the stored one, where SQLite overwrites. A
    late event that does not move a user's newest time still changes their history, so the newer
    micro-batch must win the tie on every store: on Redis, the stored time of those keys is dropped first
    (the key is built as Feast builds it; the values are overwritten by the write that follows)."""
    kind = str(store.config.online_store.type)
    if not keys or not (kind == "redis" or kind.endswith("RedisOnlineStore")):
        return
    from feast.infra.online_stores import redis as feast_redis
    from feast.infra.online_stores.helpers import _redis_key

    from profile_features.erasure.online import user_entity_keys

    config = store.config
    versioned = getattr(feast_redis, "_versioned_fv_name", None)  # Feast >= 0.68 names versioned views
    field = f"_ts:{versioned(feature_view, config) if versioned else feature_view.name}"
    client = feast_redis.RedisOnlineStore()._get_client(config.online_store)
    version = config.entity_key_serialization_version
    for key in user_entity_keys(join_key, [str(k) for k in keys]):
        client.hdel(_redis_key(config.project, key, entity_key_serialization_version=version), field)


ONLINE_COUNTS = "view string, written long, stale long"  # the schema of what `online_writer` yields


def online_writer(repo: str, store_yaml: str | None, views: list[str], key: str = "user_id"):
    """The mapInPandas function that writes each batch of a partition to every view of `views` and yields
    their counts (ONLINE_COUNTS)."""

    def write(batches):
        for batch in batches:
            for view in views:
                yield write_partition(batch, repo, store_yaml, view, key)

    return write
