"""The table commit protocol (spark/commit.py; write_atomic and read_table use it): a writer killed
after any step is settled by the next writer or by any reader, a repairer killed after any of its
steps by the next one; partial lock files never block; a crafted lock touches nothing outside its
table; concurrent writers are serialised, never mixed, and concurrent repairers settle a lock once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import profile_features.spark.commit as commit
from profile_features.spark.commit import (
    GRACE_S,
    LEASE_S,
    REPAIR_STEPS,
    STEPS,
    CommitConflict,
    LocalFS,
    UnsafeLock,
    commit_directory,
    recover_table,
    table_paths,
)
from tests.support.repo import REPO_ROOT

KILLED = """
import os, sys
from profile_features.spark.commit import LocalFS, commit_directory
staging, target, lock, at = sys.argv[1:]
commit_directory(LocalFS(), staging, target, lock, step=lambda s: os._exit(9) if s == at else None)
"""
KILLED_REPAIR = """
import os, sys
from profile_features.spark.commit import LocalFS, repair
lock, at = sys.argv[1:]
print(repair(LocalFS(), lock, step=lambda s: os._exit(9) if s == at else None))
"""
# What the partition holds once a commit killed after each step is settled.
SETTLED = {"locked": {"old"}, "aside": {"killed"}, "moved": {"killed"}, "cleaned": {"killed"}}


def _folder(path: Path, name: str, rows: int = 3) -> str:
    path.mkdir(parents=True)
    for i in range(rows):
        (path / f"part-{i}").write_text(name)
    return str(path)


def _content(path: Path) -> set[str]:
    return {p.read_text() for p in path.iterdir()} if path.exists() else set()


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _killed_commit(tmp_path: Path, at: str, uri: bool = False) -> tuple[Path, Path, str]:
    """A table whose partition held "old" and whose writer of "killed" died after step `at`:
    (partition, the table's _staging folder, the lock as the writer named it)."""
    table = tmp_path / "table"
    staging_dir = tmp_path / "_staging"
    target = table / "run_date=2026-01-01"
    _folder(target, "old")
    killed = _folder(staging_dir / "table-killed", "killed")
    lock = str(staging_dir / "table.lock")
    args = [killed, str(target), lock]
    if uri:
        args = [f"file://{a}" for a in args]
    result = subprocess.run([sys.executable, "-c", KILLED, *args, at], cwd=REPO_ROOT)
    assert result.returncode == 9  # died there, lock left behind
    assert Path(lock).exists()
    # Before any repair: never a mix; a missing partition only between steps 2 and 3.
    assert _content(target) in ({"old"}, {"killed"}, set())
    return target, staging_dir, args[2]


@pytest.mark.parametrize("at", STEPS)
def test_a_writer_killed_after_any_step_is_repaired_by_the_next_writer(tmp_path, at, monkeypatch):
    target, staging_dir, lock = _killed_commit(tmp_path, at)
    seen = []
    original = commit.repair

    def spy(fs, path, step=None):
        done = original(fs, path, step)
        seen.append((done, _content(target)))
        return done

    monkeypatch.setattr(commit, "repair", spy)
    nxt = _folder(staging_dir / "table-next", "next")
    commit_directory(LocalFS(), nxt, str(target), lock, wait_s=5, log=lambda m: None)
    assert seen and seen[0][1] == SETTLED[at]  # what stood after the repair, before the new commit
    assert _content(target) == {"next"}
    assert list(staging_dir.iterdir()) == []  # no debris: the killed staging, the aside copy and the lock are gone


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
@pytest.mark.parametrize("at", STEPS)
def test_a_reader_settles_a_commit_killed_after_any_step_without_waiting_for_a_writer(tmp_path, at, uri):
    target, staging_dir, lock = _killed_commit(tmp_path, at, uri)
    logged = []
    started = time.monotonic()
    recover_table(LocalFS(), f"file://{target}" if uri else str(target), wait_s=5, log=logged.append)
    assert time.monotonic() - started < 2  # the dead owner is known dead: no waiting for a lease
    assert _content(target) == SETTLED[at]
    assert list(staging_dir.iterdir()) == []
    assert len(logged) == 1 and "died part way" in logged[0]
    # The whole table reads the same through the table path.
    recover_table(LocalFS(), str(target.parent), wait_s=1, log=logged.append)
    assert len(logged) == 1


@pytest.mark.parametrize("repair_at", REPAIR_STEPS)
@pytest.mark.parametrize("at", STEPS)
def test_a_repairer_killed_after_any_of_its_steps_is_finished_by_the_next_one(tmp_path, at, repair_at):
    target, staging_dir, lock = _killed_commit(tmp_path, at)
    result = subprocess.run([sys.executable, "-c", KILLED_REPAIR, lock, repair_at], cwd=REPO_ROOT)
    assert result.returncode in (0, 9)  # 0: this repair never reaches that step
    assert _content(target) in ({"old"}, {"killed"}, set())  # never a mix
    if result.returncode == 9 and repair_at != "marked":
        assert _content(target) == SETTLED[at]  # a repair past its first step never exposes a gap
    recover_table(LocalFS(), str(target), wait_s=5, log=lambda m: None)
    assert _content(target) == SETTLED[at]
    # A repairer killed after its unlock leaves only its marker; the next commit sweeps it.
    debris = [p.name for p in staging_dir.iterdir()]
    assert all(".lock.repair-" in name for name in debris) and (repair_at == "unlocked" or not debris)
    commit_directory(LocalFS(), _folder(staging_dir / "table-next", "next"), str(target), lock, wait_s=5)
    assert _content(target) == {"next"} and list(staging_dir.iterdir()) == []


PARTIAL_LOCKS = {
    "empty": b"",
    "truncated": json.dumps({"host": socket.gethostname(), "pid": 1, "target": "x"}).encode()[:20],
    "garbage": b"\x00\xff\xfe not json at all",
    "not-an-object": b"[1, 2, 3]",
    "fields-missing": b'{"target": "/etc", "staging": "/"}',
}


def _table_with_lock(tmp_path: Path, raw: bytes) -> tuple[Path, Path, Path]:
    target = tmp_path / "table" / "run_date=2026-01-01"
    _folder(target, "old")
    lock = tmp_path / "_staging" / "table.lock"
    lock.parent.mkdir()
    lock.write_bytes(raw)
    return target, lock.parent, lock


@pytest.mark.parametrize("kind", PARTIAL_LOCKS)
def test_a_partial_lock_older_than_the_grace_period_never_blocks_a_commit(tmp_path, kind):
    target, staging_dir, lock = _table_with_lock(tmp_path, PARTIAL_LOCKS[kind])
    _age(lock, GRACE_S + 5)
    logged = []
    staging = _folder(staging_dir / "table-new", "new")
    started = time.monotonic()
    commit_directory(LocalFS(), staging, str(target), str(lock), wait_s=5, log=logged.append)
    assert time.monotonic() - started < 2
    assert _content(target) == {"new"} and list(staging_dir.iterdir()) == []
    assert logged and "no readable entry" in logged[0]


@pytest.mark.parametrize("kind", PARTIAL_LOCKS)
def test_a_fresh_partial_lock_is_waited_for_by_writers_and_ignored_by_readers(tmp_path, kind):
    target, staging_dir, lock = _table_with_lock(tmp_path, PARTIAL_LOCKS[kind])
    staging = _folder(staging_dir / "table-new", "new")
    # It may be a live writer's lock between its creation and its write: not dropped yet.
    with pytest.raises(CommitConflict, match=r"run_date=2026-01-01: an unreadable lock"):
        commit_directory(LocalFS(), staging, str(target), str(lock), wait_s=0.3)
    assert _content(Path(staging)) == {"new"} and lock.read_bytes() == PARTIAL_LOCKS[kind]
    # Nothing is ever moved under it, so readers need not wait.
    started = time.monotonic()
    recover_table(LocalFS(), str(target), wait_s=5)
    assert time.monotonic() - started < 1 and _content(target) == {"old"}
    # Once it is older than the grace period a reader drops it too.
    _age(lock, GRACE_S + 5)
    recover_table(LocalFS(), str(target), wait_s=5, log=lambda m: None)
    assert not lock.exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _crafted(tmp_path: Path, **paths: str) -> tuple[Path, Path, Path]:
    staging_dir = tmp_path / "_staging"
    target = tmp_path / "table" / "run_date=1"
    _folder(target, "old")
    victim = _folder(tmp_path / "victim", "precious")
    entry = {
        "host": socket.gethostname(),
        "pid": _dead_pid(),
        "target": str(target),
        "staging": str(staging_dir / "table-x"),
        "aside": str(staging_dir / f"table-replaced-{'0' * 32}"),
    }
    entry.update({k: v.format(tmp=tmp_path) for k, v in paths.items()})
    lock = staging_dir / "table.lock"
    staging_dir.mkdir()
    lock.write_text(json.dumps(entry))
    return target, Path(victim), lock


CRAFTED = {
    "target-outside": {"target": "{tmp}/victim"},
    "target-dotdot": {"target": "{tmp}/table/../victim"},
    "target-other-scheme": {"target": "s3a://bucket/table/run_date=1"},
    "staging-outside": {"staging": "{tmp}/victim"},
    "staging-dotdot": {"staging": "{tmp}/_staging/table-x/../../victim"},
    "staging-other-table": {"staging": "{tmp}/_staging/other-x"},
    "aside-outside": {"aside": "{tmp}/victim"},
    "aside-not-an-aside-name": {"aside": "{tmp}/_staging/table-x"},
    "aside-is-target": {"aside": "{tmp}/table/run_date=1", "staging": "{tmp}/_staging/table-y"},
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_a_crafted_lock_is_refused_and_touches_nothing(tmp_path, kind):
    target, victim, lock = _crafted(tmp_path, **CRAFTED[kind])
    raw = lock.read_bytes()
    staging = _folder(tmp_path / "_staging" / "table-new", "new")
    with pytest.raises(UnsafeLock, match=r"table\.lock: its (target|staging|aside) .*outside its table"):
        commit_directory(LocalFS(), staging, str(target), str(lock), wait_s=1)
    with pytest.raises(UnsafeLock, match=r"nothing was touched"):
        recover_table(LocalFS(), str(target), wait_s=1)
    assert _content(victim) == {"precious"} and _content(target) == {"old"}
    assert lock.read_bytes() == raw and _content(Path(staging)) == {"new"}


def test_a_writer_refuses_paths_that_its_own_lock_could_not_repair(tmp_path):
    outside = _folder(tmp_path / "elsewhere" / "table-x", "x")
    lock = tmp_path / "_staging" / "table.lock"
    with pytest.raises(UnsafeLock, match="staging"):
        commit_directory(LocalFS(), outside, str(tmp_path / "table" / "run_date=1"), str(lock), wait_s=1)
    assert not lock.exists() and _content(Path(outside)) == {"x"}


def test_table_paths_find_the_lock_for_tables_partitions_and_uris():
    assert table_paths("s3a://b/data/t/run_date=2026-01-01").lock == "s3a://b/data/_staging/t.lock"
    assert table_paths("/d/validated/items/").lock == "/d/validated/_staging/items.lock"
    assert table_paths("file:///d/t/run_date=1/bucket=3").table == "file:///d/t"
    # A plain path and a file: URI name the same local table; another scheme does not.
    commit.LockEntry("h", 1, "file:///d/t/run_date=1", "/d/_staging/t-1", None).check("/d/_staging/t.lock")
    with pytest.raises(UnsafeLock):
        commit.LockEntry("h", 1, "hdfs://nn/d/t/run_date=1", "/d/_staging/t-1", None).check("/d/_staging/t.lock")


def test_a_lock_of_another_host_is_waited_for_then_repaired_once_its_lease_runs_out(tmp_path):
    target, staging_dir, lock = _killed_commit(tmp_path, "aside")
    entry = json.loads(Path(lock).read_text())
    Path(lock).write_text(json.dumps({**entry, "host": "another-host"}))
    # Its owner may be alive there, in the middle of its commit: the reader waits, naming the path.
    with pytest.raises(CommitConflict, match=r"run_date=2026-01-01: another job \(another-host"):
        recover_table(LocalFS(), str(target), wait_s=0.3)
    assert _content(target) == set()
    _age(Path(lock), LEASE_S + 5)
    recover_table(LocalFS(), str(target), wait_s=5, log=lambda m: None)
    assert _content(target) == {"killed"} and list(staging_dir.iterdir()) == []


def test_a_reused_pid_is_not_taken_for_the_dead_owner(tmp_path):
    target, staging_dir, lock = _killed_commit(tmp_path, "aside")
    entry = json.loads(Path(lock).read_text())
    # This process now holds the dead writer's pid, but it started at another time.
    Path(lock).write_text(json.dumps({**entry, "pid": os.getpid(), "started": (entry["started"] or 0) + 1}))
    recover_table(LocalFS(), str(target), wait_s=5, log=lambda m: None)
    assert _content(target) == {"killed"}


def test_a_repairers_unreadable_marker_is_taken_over_once_past_the_grace_period(tmp_path):
    target, staging_dir, lock = _killed_commit(tmp_path, "aside")
    marker = Path(f"{lock}.repair-{commit.lock_key(Path(lock).read_bytes())}-0")
    marker.write_bytes(b"")  # a repairer killed while writing its marker
    with pytest.raises(CommitConflict, match="run_date=2026-01-01: another job"):
        recover_table(LocalFS(), str(target), wait_s=0.3)  # it may be writing it right now
    _age(marker, GRACE_S + 5)
    recover_table(LocalFS(), str(target), wait_s=5, log=lambda m: None)
    assert _content(target) == {"killed"} and list(staging_dir.iterdir()) == []


def test_concurrent_readers_settle_a_killed_commit_exactly_once(tmp_path):
    target, staging_dir, lock = _killed_commit(tmp_path, "aside")
    logged, seen, errors = [], [], []
    barrier = threading.Barrier(8)

    def read():
        try:
            barrier.wait()
            recover_table(LocalFS(), str(target), wait_s=10, log=logged.append)
            seen.append(_content(target))
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen == [{"killed"}] * 8  # every reader saw the partition once it returned
    assert len(logged) == 1 and "completed the commit" in logged[0]
    assert list(staging_dir.iterdir()) == []


def test_readers_and_writers_racing_over_a_killed_commit_leave_one_writers_rows(tmp_path):
    target, staging_dir, lock = _killed_commit(tmp_path, "aside")
    errors = []
    barrier = threading.Barrier(6)

    def run(fn):
        try:
            barrier.wait()
            fn()
        except Exception as err:  # surfaced below
            errors.append(err)

    stagings = [_folder(staging_dir / f"table-w{n}", f"w{n}") for n in range(2)]
    writers = [
        lambda s=s: commit_directory(LocalFS(), s, str(target), lock, wait_s=10, log=lambda m: None) for s in stagings
    ]
    readers = [lambda: recover_table(LocalFS(), str(target), wait_s=10, log=lambda m: None)] * 4
    threads = [threading.Thread(target=run, args=(fn,)) for fn in writers + readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _content(target) in ({"w0"}, {"w1"})
    assert list(staging_dir.iterdir()) == []


def test_concurrent_writers_are_serialised_and_never_mixed(tmp_path):
    target = tmp_path / "table" / "run_date=2026-01-01"
    lock = str(tmp_path / "_staging" / "table.lock")
    order = []

    def slow(name):
        def step(s):
            if s == "aside":
                order.append(name)
                time.sleep(0.3)  # the other writer arrives while this one is between renames

        return step

    stagings = {n: _folder(tmp_path / "_staging" / f"table-{n}", n) for n in ("a", "b")}
    threads = [
        threading.Thread(
            target=commit_directory, args=(LocalFS(), stagings[n], str(target), lock), kwargs={"step": slow(n)}
        )
        for n in ("a", "b")
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert order == ["a", "b"]  # b waited for a's lock
    assert _content(target) == {"b"} and not Path(lock).exists()
    assert not [p for p in target.iterdir() if p.is_dir()]  # nothing nested inside the partition


def test_a_live_lock_held_too_long_is_a_conflict_naming_the_table(tmp_path):
    lock = tmp_path / "_staging" / "table.lock"
    lock.parent.mkdir()
    entry = {
        "host": socket.gethostname(),
        "pid": 1,
        "target": str(tmp_path / "table" / "run_date=1"),
        "staging": str(lock.parent / "table-y"),
    }
    lock.write_text(json.dumps(entry))
    staging = _folder(tmp_path / "_staging" / "table-x", "x")
    with pytest.raises(CommitConflict, match=r"table/run_date=1: another job.*pid 1"):
        commit_directory(LocalFS(), staging, str(tmp_path / "table" / "run_date=1"), str(lock), wait_s=0.5)
    assert _content(Path(staging)) == {"x"}  # nothing moved


@pytest.mark.parametrize("at", STEPS)
def test_materialize_settles_a_killed_commit_before_feast_reads_the_source(tmp_path, at):
    from profile_features.feast.materialize import settle_source

    target, staging_dir, _ = _killed_commit(tmp_path, at)
    settle_source(str(target.parent))  # a FileSource names the table folder
    assert _content(target) == SETTLED[at]
    assert list(staging_dir.iterdir()) == []
