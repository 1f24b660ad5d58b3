"""Committing a staged directory into place: safe under concurrent writers, recoverable after a kill.

A writer has finished writing its data to a staging directory S beside the table. To put it at the
target T (the table, or one `run_date=` partition of it):

  1. lock:  create `<table>.lock` (in the table's `_staging/`) exclusively; it records the owner
            (host, pid) and the three paths. Another live writer's lock makes this one wait: commits
            of a table are serialised, so two jobs can never mix their rows in one partition.
  2. aside: rename T to A (when T exists)
  3. move:  rename S to T
  4. clean: delete A
  5. unlock: delete the lock

A lock whose owner is gone (its pid is dead on this host, or it is older than the lease) is a
commit killed part way. The next writer, before its own commit, repairs it from what exists:
S there and T missing: step 3 is due, finish it; S and T there: step 2 never ran, drop S (that
job never committed); neither there but A: put A back. Then A and the lock go. Either way T holds
one writer's complete data, never none and never two writers' rows.

The file system is a small Protocol: Hadoop's FileSystem for tables (any scheme Spark reads),
a local one for tests that kill a writer between steps.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["CommitFS", "LocalFS", "HadoopFS", "CommitConflict", "commit_directory", "repair"]

LEASE_S = 900.0  # a commit is a few renames; a lock this old has no live owner
STEPS = ("locked", "aside", "moved", "cleaned")


class CommitConflict(RuntimeError):
    """Another writer kept the table's lock for longer than this writer would wait."""


class CommitFS(Protocol):
    def exists(self, path: str) -> bool: ...

    def rename(self, source: str, target: str) -> bool: ...

    def delete(self, path: str) -> None: ...

    def mkdirs(self, path: str) -> None: ...

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create `path` holding `data`; False (and nothing written) when it already exists."""
        ...

    def read(self, path: str) -> bytes | None: ...

    def age_s(self, path: str) -> float: ...


class LocalFS:
    """Plain local paths (os calls: exclusive create is O_EXCL)."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def rename(self, source: str, target: str) -> bool:
        try:
            os.rename(source, target)
            return True
        except OSError:
            return False

    def delete(self, path: str) -> None:
        import shutil

        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)

    def mkdirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        return True

    def read(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def age_s(self, path: str) -> float:
        try:
            return time.time() - os.path.getmtime(path)
        except FileNotFoundError:
            return 0.0


class HadoopFS:
    """Hadoop's FileSystem through the session's JVM: HDFS, s3a, gs, file. Local paths take the
    `LocalFS` calls (Hadoop's local create-if-absent is a check then a create, not exclusive)."""

    def __init__(self, spark):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str):
        hadoop_path = self._jvm.org.apache.hadoop.fs.Path(path)
        return hadoop_path.getFileSystem(self._conf), hadoop_path

    def _local(self, path: str) -> str | None:
        fs, hadoop_path = self._fs(path)
        if fs.getUri().getScheme() != "file":
            return None
        return str(fs.makeQualified(hadoop_path).toUri().getPath())

    def exists(self, path: str) -> bool:
        fs, hadoop_path = self._fs(path)
        return bool(fs.exists(hadoop_path))

    def rename(self, source: str, target: str) -> bool:
        fs, source_path = self._fs(source)
        return bool(fs.rename(source_path, self._fs(target)[1]))

    def delete(self, path: str) -> None:
        fs, hadoop_path = self._fs(path)
        fs.delete(hadoop_path, True)

    def mkdirs(self, path: str) -> None:
        fs, hadoop_path = self._fs(path)
        fs.mkdirs(hadoop_path)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        local = self._local(path)
        if local is not None:
            return LocalFS().create_exclusive(local, data)
        from py4j.protocol import Py4JJavaError

        fs, hadoop_path = self._fs(path)
        try:
            stream = fs.create(hadoop_path, False)  # atomic create-if-absent on HDFS
        except Py4JJavaError as err:
            if "FileAlreadyExists" in str(err.java_exception):
                return False
            raise
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        return True

    def read(self, path: str) -> bytes | None:
        fs, hadoop_path = self._fs(path)
        if not fs.exists(hadoop_path):
            return None
        stream = fs.open(hadoop_path)
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def age_s(self, path: str) -> float:
        fs, hadoop_path = self._fs(path)
        try:
            return time.time() - fs.getFileStatus(hadoop_path).getModificationTime() / 1000.0
        except Exception:  # gone meanwhile
            return 0.0


def _alive(owner: dict) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # cannot tell from here: the lease decides
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError):
        return True
    return True


def repair(fs: CommitFS, lock: str) -> str | None:
    """Finish or undo the commit a dead writer left under `lock`; returns what was done (None: no lock)."""
    raw = fs.read(lock)
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        target, staging, aside = entry["target"], entry["staging"], entry.get("aside")
    except (ValueError, KeyError):  # killed while writing the lock itself: nothing had moved yet
        fs.delete(lock)
        return "dropped an empty lock"
    if fs.exists(staging) and not fs.exists(target):
        fs.rename(staging, target)
        done = "completed the commit"
    elif fs.exists(staging):
        fs.delete(staging)
        done = "dropped a commit that had not started"
    elif not fs.exists(target) and aside and fs.exists(aside):
        fs.rename(aside, target)
        done = "restored the previous data"
    else:
        done = "cleaned up a finished commit"
    if aside and fs.exists(aside):
        fs.delete(aside)
    fs.delete(lock)
    return done


def _acquire(fs: CommitFS, lock: str, entry: dict, wait_s: float, log: Callable[[str], None]) -> None:
    payload = json.dumps(entry).encode()
    deadline = time.monotonic() + wait_s
    while not fs.create_exclusive(lock, payload):
        raw = fs.read(lock)
        owner = json.loads(raw) if raw else {}
        if raw is not None and (not _alive(owner) or fs.age_s(lock) > LEASE_S):
            log(f"{lock}: a writer died mid-commit; {repair(fs, lock)}")
            continue
        if time.monotonic() > deadline:
            raise CommitConflict(
                f"{entry['target']}: another job ({owner.get('host')}, pid {owner.get('pid')}) is committing to "
                f"this table; waited {wait_s:.0f}s for its lock {lock}"
            )
        time.sleep(0.2)


def commit_directory(
    fs: CommitFS,
    staging: str,
    target: str,
    lock: str,
    wait_s: float = 600.0,
    step: Callable[[str], None] | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Move the complete directory `staging` to `target`, replacing what is there (see the module doc).

    Args:
        lock: the lock file of `target`'s table (one per table: partition and whole-table commits
            of a table are serialised against each other).
        wait_s: how long to wait for another live writer's lock before CommitConflict.
        step: called after each step with its name (STEPS); tests kill the process there.
    """
    aside = f"{lock[: -len('.lock')]}-replaced-{uuid.uuid4().hex}"
    entry = {"host": socket.gethostname(), "pid": os.getpid(), "target": target, "staging": staging, "aside": aside}
    _acquire(fs, lock, entry, wait_s, log)
    try:
        if step:
            step("locked")
        had_old = fs.exists(target)
        if had_old and not fs.rename(target, aside):
            raise OSError(f"could not move {target} aside")
        if step:
            step("aside")
        fs.mkdirs(target.rstrip("/").rsplit("/", 1)[0])
        if fs.exists(target) or not fs.rename(staging, target):  # a rename onto a folder would nest in it
            if had_old and not fs.exists(target):
                fs.rename(aside, target)
            raise OSError(f"could not commit {staging} to {target}")
        if step:
            step("moved")
        if had_old:
            fs.delete(aside)
        if step:
            step("cleaned")
    finally:
        fs.delete(lock)
