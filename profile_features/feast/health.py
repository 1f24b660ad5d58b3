"""Pre-flight checks before apply/materialize: fail early and clearly, change nothing.

Feast itself only notices an unreachable Redis when it has rows to write, so an
incremental run with nothing new "succeeds" against a dead server and the outage
is found later by serving. The pipeline checks the online store first.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["OnlineStoreUnavailable", "check_online_store"]


class OnlineStoreUnavailable(RuntimeError):
    """The configured online store cannot be reached."""


def check_online_store(repo: Path, store_yaml: Path | None = None) -> str:
    """Ping the repo's online store; returns a one-line description of it.

    Raises:
        OnlineStoreUnavailable: naming the store type, the address and the cause.
    """
    from feast import FeatureStore

    store = (
        FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml) if store_yaml else FeatureStore(repo_path=str(repo))
    )
    config = store.config.online_store
    kind = getattr(config, "type", "sqlite")
    if kind == "redis":
        from feast.infra.online_stores.redis import RedisOnlineStore

        try:
            RedisOnlineStore()._get_client(config).ping()
        except Exception as err:  # redis raises ConnectionError/TimeoutError/AuthenticationError
            raise OnlineStoreUnavailable(
                f"Redis online store at {config.connection_string} is unreachable ({err}); nothing was "
                "applied or materialized"
            ) from err
        return f"redis {config.connection_string}"
    if kind == "sqlite":
        path = Path(config.path if Path(config.path).is_absolute() else Path(repo) / config.path)
        if not path.parent.exists() and not _can_create(path.parent):
            raise OnlineStoreUnavailable(f"SQLite online store folder {path.parent} cannot be created")
        return f"sqlite {path}"
    return str(kind)


def _can_create(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError:
        return False
