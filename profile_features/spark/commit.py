"""Committing a staged directory into place: safe under concurrent writers, recoverable after a kill.

A writer has finished writing its data to a staging directory S in `<table parent>/_staging/`. To
put it at the target T (the table, or one `run_date=` partition of it):

  1. lock:  create `_staging/<table>.lock` exclusively; it records the owner (host, pid, process
            start) and the three paths. Another live writer's lock makes this one wait: commits of
            a table are serialised, so two jobs can never mix their rows in one partition.
  2. aside: rename T to A (`_staging/<table>-replaced-<uuid>`), when T exists
  3. move:  rename S to T
  4. clean: delete A
  5. unlock: delete the lock (only if it is still this writer's)

A lock whose owner is gone (its pid is dead on this host, or the lock is older than the lease) is a
commit killed part way; `repair` settles it from what exists: S there and T missing: step 3 is due,
finish it; S and T there: step 2 never ran, drop S; neither there but A: put A back. A is deleted
only once T is in place, so T always ends up holding one writer's complete data.

Who repairs: writers before their own commit, and readers (`recover_table`, called by
`spark.io.read_table`) whenever a stale lock is there or a live commit is between steps 2 and 3 (T
missing, A there): a reader waits for that gap to close or repairs it, so no kill leaves a reader
without the partition. Repairs of one lock are serialised by an exclusively created marker
(`<lock>.repair-<hash of the lock's bytes>-<n>`, n counting dead repairers), and the repairer
re-reads the lock under it, so a lock is never settled twice nor a successor's lock deleted.

A lock is untrusted input (spark/commit_lock.py): its paths must be T within its table and S, A
within the table's `_staging/` (the names a writer uses), else `UnsafeLock` and nothing is touched.
A lock with no readable entry (empty, truncated, garbage: a writer killed while writing it, when
nothing had moved yet) is dropped once it is older than GRACE_S.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from profile_features.spark.commit_fs import CommitFS, HadoopFS, LocalFS, local_fs_for
from profile_features.spark.commit_lock import (
    GRACE_S,
    LEASE_S,
    LockEntry,
    LockState,
    TablePaths,
    UnsafeLock,
    inspect_lock,
    lock_key,
    owner_alive,
    owner_json,
    parse_owner,
    process_start,
    table_paths,
)

__all__ = [
    "CommitFS",
    "LocalFS",
    "HadoopFS",
    "local_fs_for",
    "STEPS",
    "REPAIR_STEPS",
    "LEASE_S",
    "GRACE_S",
    "CommitConflict",
    "UnsafeLock",
    "LockEntry",
    "LockState",
    "TablePaths",
    "table_paths",
    "inspect_lock",
    "commit_directory",
    "repair",
    "recover_table",
]

_LOG = logging.getLogger(__name__)

STEPS = ("locked", "aside", "moved", "cleaned")
REPAIR_STEPS = ("marked", "dropped-staging", "moved-staging", "restored-aside", "deleted-aside", "settled", "unlocked")
MAX_REPAIRERS = 64  # dead repairers of one lock before giving up (each left a marker)
Step = Callable[[str], None]


class CommitConflict(RuntimeError):
    """Another writer kept the table's lock for longer than this caller would wait."""


def _claim(fs: CommitFS, lock: str, raw: bytes) -> list[str] | None:
    """Take the right to repair the lock holding `raw`: the markers up to this caller's (its last),
    or None when a live caller holds it (or the repair finished meanwhile)."""
    key = lock_key(raw)
    markers = []
    for n in range(MAX_REPAIRERS):
        marker = f"{lock}.repair-{key}-{n}"
        markers.append(marker)
        if fs.create_exclusive(marker, owner_json()):
            return markers
        raw_marker = fs.read(marker)
        if raw_marker is None:
            return None  # its repairer just finished
        owner, age = parse_owner(raw_marker), fs.age_s(marker)
        dead = (owner is not None and owner_alive(*owner) is False) or age > (LEASE_S if owner else GRACE_S)
        if not dead:
            return None
    raise CommitConflict(f"{lock}: {MAX_REPAIRERS} repairers of this lock died; inspect {lock}.repair-* by hand")


def _sweep_markers(fs: CommitFS, lock: str, own: bytes) -> None:
    """Delete repair markers of locks that are gone (left by a repairer killed after its unlock);
    called while holding the lock, so no repair of another lock can be under way."""
    keep = f"{lock.rsplit('/', 1)[1]}.repair-{lock_key(own)}-"
    prefix = f"{lock.rsplit('/', 1)[1]}.repair-"
    folder = lock.rsplit("/", 1)[0]
    for name in fs.list_names(folder):
        if name.startswith(prefix) and not name.startswith(keep):
            fs.delete(f"{folder}/{name}")


def _settle(fs: CommitFS, entry: LockEntry, step: Step) -> str:
    """Finish or undo the commit `entry` describes. Idempotent (a repairer killed anywhere in here
    leaves a state the next one settles the same way), and A goes only once T is in place."""
    target, staging, aside = entry.target, entry.staging, entry.aside
    done = "cleaned up a finished commit"
    if fs.exists(staging) and fs.exists(target):  # step 2 never ran: that job never committed
        fs.delete(staging)
        done = "dropped a commit that had not started"
        step("dropped-staging")
    elif fs.exists(staging):  # step 3 is due (T was moved aside, or there was none)
        fs.mkdirs(target.rstrip("/").rsplit("/", 1)[0])
        if not fs.rename(staging, target):
            raise OSError(f"could not move {staging} to {target}; the lock stays until this is fixed")
        done = "completed the commit"
        step("moved-staging")
    if not fs.exists(target) and aside and fs.exists(aside):
        if not fs.rename(aside, target):
            raise OSError(f"could not restore {aside} to {target}; the lock stays until this is fixed")
        done = "restored the previous data"
        step("restored-aside")
    if aside and fs.exists(aside) and fs.exists(target):
        fs.delete(aside)
        step("deleted-aside")
    return done


def repair(fs: CommitFS, lock: str, step: Step | None = None) -> str | None:
    """Finish or undo the commit whose owner died holding `lock`; returns what was done, or None when
    there is nothing this caller may repair now (no lock, a live owner, another repairer at work).

    Raises:
        UnsafeLock: the lock's paths leave its table (nothing is touched).
    """
    state = inspect_lock(fs, lock)
    if state is None or not state.stale:
        return None
    markers = _claim(fs, lock, state.raw)
    if markers is None:
        return None
    step = step or (lambda name: None)
    try:
        again = inspect_lock(fs, lock)
        if again is None or again.raw != state.raw or not again.stale:  # settled meanwhile
            return None
        step("marked")
        done = "dropped a lock with no readable entry (nothing had moved)"
        if state.entry is not None:
            done = _settle(fs, state.entry, step)
        step("settled")
        fs.delete(lock)
        step("unlocked")
        return done
    finally:
        for marker in reversed(markers):  # dead repairers' markers too: this repair is their work done
            fs.delete(marker)


def _wait_for_lock(
    fs: CommitFS,
    lock: str,
    subject: str,
    wait_s: float,
    log: Callable[[str], None],
    settled: Callable[[LockState], bool],
    deadline: float | None = None,
) -> None:
    """Repair stale locks until `settled(state)` holds for the lock there (or none is there)."""
    deadline = time.monotonic() + wait_s if deadline is None else deadline
    while True:
        state = inspect_lock(fs, lock)
        if state is None or settled(state):
            return
        if state.stale:
            done = repair(fs, lock)
            if done:
                log(f"{lock}: a commit's writer died part way; {done}")
                continue
        if time.monotonic() > deadline:
            raise CommitConflict(f"{subject}: {state.describe()} (lock {lock}); waited {wait_s:.0f}s for it")
        time.sleep(0.2)


def recover_table(fs: CommitFS, path: str, wait_s: float = LEASE_S + 60, log: Callable[[str], None] = _LOG.warning):
    """Make `path` (a table or one of its partitions) safe to read: repair a stale lock of its table,
    and wait while a live commit has moved a partition aside but not yet moved its new data in.

    Raises:
        CommitConflict: the gap stayed open for `wait_s` (a lease runs out after LEASE_S, then it is repaired).
        UnsafeLock: the table's lock names paths outside the table.
    """

    def readable(state: LockState) -> bool:
        if state.stale:
            return False  # repair it now rather than leave it to the next writer
        entry = state.entry
        if entry is None:  # nothing is ever moved under a lock without an entry
            return True
        return not (entry.aside and not fs.exists(entry.target) and fs.exists(entry.aside))

    _wait_for_lock(fs, table_paths(path).lock, path, wait_s, log, readable)


def commit_directory(
    fs: CommitFS,
    staging: str,
    target: str,
    lock: str,
    wait_s: float = 600.0,
    step: Step | None = None,
    log: Callable[[str], None] = _LOG.warning,
) -> None:
    """Move the complete directory `staging` to `target`, replacing what is there (see the module doc).

    Args:
        lock: the lock file of `target`'s table (one per table: partition and whole-table commits
            of a table are serialised against each other).
        wait_s: how long to wait for another live writer's lock before CommitConflict.
        step: called after each step with its name (STEPS); tests kill the process there.
    """
    aside = f"{lock[: -len('.lock')]}-replaced-{uuid.uuid4().hex}"
    entry = LockEntry(socket.gethostname(), os.getpid(), target, staging, aside, process_start(os.getpid()))
    entry.check(lock)  # the same rules a repair applies, so this writer's lock is always repairable
    payload = entry.to_json()
    deadline = time.monotonic() + wait_s
    while not fs.create_exclusive(lock, payload):
        _wait_for_lock(fs, lock, target, wait_s, log, lambda state: False, deadline)
    try:
        _sweep_markers(fs, lock, payload)
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
        if fs.read(lock) == payload:  # after a lease ran out, the lock may be a successor's
            fs.delete(lock)
