"""A table's lock file: where it lives, what it records, and whether its owner is gone (spark/commit.py).

A lock is untrusted input. Its entry is used only when its paths are confined to its table: the
target inside the table folder, the staging and aside folders directly in the table's `_staging/`
under the names a writer gives them; anything else is `UnsafeLock`. Paths are URIs (plain, `file:`,
`hdfs://`, `s3a://`, ...) compared segment by segment, never resolved on the local disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass

from profile_features.spark.commit_fs import CommitFS

__all__ = [
    "LEASE_S",
    "GRACE_S",
    "UnsafeLock",
    "TablePaths",
    "table_paths",
    "LockEntry",
    "LockState",
    "inspect_lock",
    "owner_json",
    "owner_alive",
    "lock_key",
    "tables_of_lock",
    "process_start",
    "parse_owner",
]

LEASE_S = 900.0  # a commit is a few renames; a lock this old has no live owner
GRACE_S = 30.0  # a lock is written in one call right after its creation; unreadable this long, its writer died
_PARTITION = re.compile(r"^[^=/]+=[^/]*$")


class UnsafeLock(ValueError):
    """A lock file names paths outside its table (or is not where a table's lock lives): refused."""


@dataclass(frozen=True)
class TablePaths:
    table: str  # the table folder
    staging_dir: str  # `<table parent>/_staging`: staged data, aside copies, the lock
    name: str
    lock: str


def table_paths(path: str) -> TablePaths:
    """The table that holds `path` (itself, or the folder above its `key=value` partitions) and its lock."""
    table = path.rstrip("/")
    while "/" in table and _PARTITION.match(table.rsplit("/", 1)[1]):
        table = table.rsplit("/", 1)[0]
    if "/" not in table:
        raise ValueError(f"{path}: a table path needs a parent folder (for its _staging/)")
    parent, name = table.rsplit("/", 1)
    return TablePaths(table, f"{parent}/_staging", name, f"{parent}/_staging/{name}.lock")


def tables_of_lock(lock: str) -> TablePaths:
    """The table a lock path belongs to (UnsafeLock unless it is `<parent>/_staging/<table>.lock`)."""
    staging_dir, file = lock.rsplit("/", 1) if "/" in lock else ("", lock)
    if not file.endswith(".lock") or len(file) == len(".lock") or not staging_dir.endswith("/_staging"):
        raise UnsafeLock(f"{lock}: not a table lock (expected <table parent>/_staging/<table>.lock)")
    parent = staging_dir[: -len("/_staging")]
    name = file[: -len(".lock")]
    return TablePaths(f"{parent}/{name}", staging_dir, name, lock)


def _split(uri: str) -> tuple[str, list[str]]:
    """(file system, path segments); plain paths and `file:` URIs are the same (local) file system."""
    if "://" not in uri and not uri.startswith("file:"):
        return ("file", uri[1:].split("/")) if uri.startswith("/") else ("relative", uri.split("/"))
    scheme, _, rest = uri.partition(":")
    rest = rest[2:] if rest.startswith("//") else rest  # file:/x (Hadoop's form) has no authority
    authority, _, path = ("", "", rest[1:]) if rest.startswith("/") else rest.partition("/")
    scheme = scheme.lower()
    local = scheme == "file" and authority in ("", "localhost")
    return ("file" if local else f"{scheme}://{authority}"), path.split("/")


def _inside(path: str, folder: str, child_name: re.Pattern | None = None) -> bool:
    """`path` is `folder` itself or below it (child_name: exactly one level below, with that name).
    The folder part must match literally and the rest hold no `..`, `.` or empty segment, so the
    path cannot leave the folder however the folder itself is spelled."""
    system, segments = _split(path)
    folder_system, folder_segments = _split(folder)
    if system != folder_system or segments[: len(folder_segments)] != folder_segments:
        return False
    rest = segments[len(folder_segments) :]
    if any(s in ("", ".", "..") for s in rest):
        return False
    return child_name is None or (len(rest) == 1 and bool(child_name.fullmatch(rest[0])))


@dataclass(frozen=True)
class LockEntry:
    host: str
    pid: int
    target: str
    staging: str
    aside: str | None
    started: int | None = None  # the owner's process start (clock ticks since boot): a reused pid is not it

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    def check(self, lock: str) -> None:
        """Raise UnsafeLock unless T is within the lock's table and S, A are the table's staging names."""
        paths = tables_of_lock(lock)
        name = re.escape(paths.name)
        rules = (
            ("target", self.target, paths.table, None),
            ("staging", self.staging, paths.staging_dir, re.compile(f"{name}-[^/]+")),
            ("aside", self.aside, paths.staging_dir, re.compile(f"{name}-replaced-[0-9a-f]{{32}}")),
        )
        for field, value, folder, child in rules:
            if value is not None and not _inside(value, folder, child):
                where = f"{folder}/{child.pattern}" if child else f"{folder} (or below)"
                raise UnsafeLock(
                    f"{lock}: its {field} {value!r} is outside its table (must be {where}); nothing was touched. "
                    f"This lock was not written by a commit of this table: inspect it, then delete it by hand"
                )
        if self.staging == self.target or self.aside in (self.target, self.staging):
            raise UnsafeLock(f"{lock}: its target, staging and aside paths must differ; nothing was touched")


def _json_object(raw: bytes) -> dict:
    try:
        data = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return {}
    return data if isinstance(data, dict) else {}


def _owner_of(data: dict) -> tuple[str, int, int | None] | None:
    host, pid, started = data.get("host"), data.get("pid"), data.get("started")
    if not isinstance(host, str) or not isinstance(pid, int) or isinstance(pid, bool):
        return None
    return host, pid, started if isinstance(started, int) and not isinstance(started, bool) else None


def _parse(raw: bytes) -> LockEntry | None:
    """The entry of a lock file; None when it has none (empty, truncated, garbage, fields missing)."""
    data = _json_object(raw)
    owner, target, staging, aside = _owner_of(data), data.get("target"), data.get("staging"), data.get("aside")
    if owner is None or not (isinstance(target, str) and isinstance(staging, str)):
        return None
    if not (aside is None or isinstance(aside, str)):
        return None
    host, pid, started = owner
    return LockEntry(host, pid, target, staging, aside, started)


def process_start(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return int(stream.read().rsplit(b")", 1)[1].split()[19])  # field 22: starttime
    except (OSError, IndexError, ValueError):
        return None


def owner_alive(host: str, pid: int, started: int | None) -> bool | None:
    """Whether a lock's owner runs; None when it cannot be told from here (another host)."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return started is None or process_start(pid) in (None, started)  # a reused pid is another process


@dataclass(frozen=True)
class LockState:
    raw: bytes
    entry: LockEntry | None  # None: no readable entry (a partial or foreign lock file)
    stale: bool
    age_s: float

    def describe(self) -> str:
        if self.entry is None:
            return f"an unreadable lock ({len(self.raw)} bytes, {self.age_s:.0f}s old; dropped after {GRACE_S:.0f}s)"
        return f"another job ({self.entry.host}, pid {self.entry.pid}) committing to {self.entry.target}"


def inspect_lock(fs: CommitFS, lock: str) -> LockState | None:
    """The lock's state (None: no lock). Raises UnsafeLock for an entry whose paths leave the table."""
    raw = fs.read(lock)
    if raw is None:
        return None
    entry, age = _parse(raw), fs.age_s(lock)
    if entry is None:
        return LockState(raw, None, age > GRACE_S, age)
    entry.check(lock)
    return LockState(raw, entry, owner_alive(entry.host, entry.pid, entry.started) is False or age > LEASE_S, age)


def owner_json() -> bytes:
    """This process as a lock or marker owner."""
    return json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid())}
    ).encode()


def lock_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_owner(raw: bytes) -> tuple[str, int, int | None] | None:
    """(host, pid, process start) of a marker or lock file; None when unreadable."""
    return _owner_of(_json_object(raw))
