"""Deleting users' rows from a Feast repo's online store (SQLite or Redis).

Feast 0.67 has no delete by entity key: `online_write_batch` only writes, `update`/`teardown` and
Redis's `delete_entity_values`/`delete_table` drop whole views or every key of an entity. So this
deletes by entity key through each store's own client, with the keys built as Feast builds them:

- SQLite: one row per (entity_key, feature_name) in the table `compute_table_id(project, view)`,
  entity_key = `serialize_entity_key(EntityKey(user_id))`. Deleted with `secure_delete` on, then
  VACUUM, so the file keeps no freed page holding the old bytes.
- Redis: one hash per entity, key `_redis_key(project, entity_key)`, holding every view's fields:
  the key is deleted.

Only the views whose one join key is the repo's user join key (`profile_features.yaml`, default
user_id) are touched; item rows stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from profile_features.feast.settings import load_feast_settings

__all__ = ["OnlineResult", "forget_online", "user_entity_keys"]

_CHUNK = 500  # SQLite's default limit on bound parameters is 999


@dataclass(frozen=True)
class OnlineResult:
    store: str  # "sqlite" | "redis"
    views: tuple[str, ...]
    entities_deleted: int  # users that had any row
    rows_deleted: int  # SQLite: (entity, feature) rows; Redis: keys


def _user_join_key(repo: Path) -> str:
    settings = repo / "profile_features.yaml"
    if not settings.exists():
        return "user_id"
    return load_feast_settings(settings).user.join_key


def user_entity_keys(join_key: str, user_ids: list[str]) -> list:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return [EntityKey(join_keys=[join_key], entity_values=[Value(string_val=u)]) for u in user_ids]


def forget_online(repo: str | Path, user_ids: list[str], feature_store_yaml: str | Path | None = None) -> OnlineResult:
    """Delete the users' rows from the online store of the Feast repo at `repo`.

    Raises:
        NotImplementedError: an online store other than SQLite or Redis.
    """
    from feast import FeatureStore

    repo = Path(repo)
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=Path(feature_store_yaml) if feature_store_yaml else None)
    join_key = _user_join_key(repo)
    views = [v for v in store.list_feature_views() if list(v.join_keys) == [join_key]]
    keys = user_entity_keys(join_key, user_ids)
    kind = store.config.online_store.type
    if kind == "sqlite" or kind.endswith("SqliteOnlineStore"):
        return _forget_sqlite(store.config, views, keys)
    if kind == "redis" or kind.endswith("RedisOnlineStore"):
        return _forget_redis(store.config, views, keys)
    raise NotImplementedError(f"forget: online store {kind!r} is not supported (SQLite and Redis are)")


def _forget_sqlite(config, views, keys) -> OnlineResult:
    import sqlite3

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    version = config.entity_key_serialization_version
    serialized = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    versioning = config.registry.enable_online_feature_view_versioning
    path = SqliteOnlineStore._get_db_path(config)
    rows, entities = 0, set()
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left holding the values
        present = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for view in views:
            table = compute_table_id(config.project, view, versioning)
            if table not in present:
                continue
            quoted = '"' + table.replace('"', '""') + '"'
            for start in range(0, len(serialized), _CHUNK):
                chunk = serialized[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found = connection.execute(
                    f"SELECT DISTINCT entity_key FROM {quoted} WHERE entity_key IN ({marks})", chunk
                )
                entities.update(bytes(r[0]) for r in found)
                rows += connection.execute(f"DELETE FROM {quoted} WHERE entity_key IN ({marks})", chunk).rowcount
        connection.commit()
        connection.execute("VACUUM")  # rebuilds the file: no page of the old one survives
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return OnlineResult("sqlite", tuple(v.name for v in views), len(entities), rows)


def _forget_redis(config, views, keys) -> OnlineResult:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.infra.online_stores.redis import RedisOnlineStore

    client = RedisOnlineStore()._get_client(config.online_store)
    version = config.entity_key_serialization_version
    redis_keys = [_redis_key(config.project, k, entity_key_serialization_version=version) for k in keys]
    deleted = 0
    for start in range(0, len(redis_keys), _CHUNK):
        deleted += client.delete(*redis_keys[start : start + _CHUNK])
    return OnlineResult("redis", tuple(v.name for v in views), deleted, deleted)
