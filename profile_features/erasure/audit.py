"""The audit record of one erasure request: `<data_dir>/erasure_audit/<UTC stamp>-<request id>.json`.

It says when, how many users, which tables (and partitions) lost how many rows, which files were
rewritten or deleted, what the online store lost, and the tombstone version; never an id (the
tombstone list holds the salted hashes). A re-run of a request after a kill writes its own record,
counting only what that run removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from profile_features import storage
from profile_features.catalogue import ERASURE_AUDIT, DataDir

__all__ = ["audit_record", "write_audit"]


def audit_record(
    request_id: str,
    started: datetime,
    finished: datetime,
    users: int,
    tombstone_version: int,
    tombstones_added: int,
    tables: dict[str, dict[str, Any]],
    files: dict[str, list[str]],
    scratch_deleted: list[str],
    online: dict[str, Any] | None,
    evaluations: dict[str, Any] | None = None,
    outside_files: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "users": users,
        "tombstone_version": tombstone_version,
        "tombstones_added": tombstones_added,
        "rows_removed": sum(t["rows_removed"] for t in tables.values()),
        "tables": tables,
        "files": files,
        "scratch_deleted": scratch_deleted,
        "online_store": online,
        "evaluations": evaluations or {},  # work folder -> rows removed per run (each run keeps its own record)
        "outside_files": outside_files or {},  # file outside data_dir -> rows removed
    }


def write_audit(data_dir: str, record: dict[str, Any]) -> str:
    stamp = datetime.fromisoformat(record["finished_at"]).strftime("%Y%m%dT%H%M%S%fZ")
    path = storage.join(DataDir(data_dir).root(ERASURE_AUDIT), f"{stamp}-{record['request_id']}.json")
    return storage.write_json(path, record)
