"""The table commit protocol: a writer killed after any step is repaired by the next one, and
concurrent writers are serialised, never mixed (spark/commit.py; write_atomic uses it)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from profile_features.spark.commit import STEPS, CommitConflict, LocalFS, commit_directory, repair
from tests.conftest import REPO_ROOT

KILLED = """
import os, sys
from profile_features.spark.commit import LocalFS, commit_directory
staging, target, lock, at = sys.argv[1:]
commit_directory(LocalFS(), staging, target, lock, step=lambda s: os._exit(9) if s == at else None)
"""


def _folder(path: Path, name: str, rows: int = 3) -> str:
    path.mkdir(parents=True)
    for i in range(rows):
        (path / f"part-{i}").write_text(name)
    return str(path)


def _content(path: Path) -> set[str]:
    return {p.read_text() for p in path.iterdir()} if path.exists() else set()


@pytest.mark.parametrize("at", STEPS)
def test_a_writer_killed_after_any_step_is_repaired_by_the_next_writer(tmp_path, at):
    table = tmp_path / "table"
    staging_dir = table.parent / "_staging"
    target = table / "run_date=2026-01-01"
    _folder(target, "old")
    killed = _folder(staging_dir / "table-killed", "killed")
    lock = str(staging_dir / "table.lock")
    result = subprocess.run([sys.executable, "-c", KILLED, killed, str(target), lock, at], cwd=REPO_ROOT)
    assert result.returncode == 9  # died there, lock left behind
    assert Path(lock).exists()
    # What a reader sees before any repair: never a mix; a missing partition only between steps 2 and 3.
    assert _content(target) in ({"old"}, {"killed"}, set())

    expected = {"locked": {"old"}, "aside": {"killed"}, "moved": {"killed"}, "cleaned": {"killed"}}[at]
    logged = []
    nxt = _folder(staging_dir / "table-next", "next")
    # The next writer of the same table repairs first; what stood after the repair is what we expect.
    original_repair = repair

    def spy(fs, path):
        done = original_repair(fs, path)
        logged.append((done, _content(target)))
        return done

    import profile_features.spark.commit as commit

    commit.repair = spy
    try:
        commit_directory(LocalFS(), nxt, str(target), lock, wait_s=5, log=lambda m: None)
    finally:
        commit.repair = original_repair
    assert logged and logged[0][1] == expected
    assert _content(target) == {"next"}
    assert list(staging_dir.iterdir()) == []  # no debris: the killed staging, the aside copy and the lock are gone


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
    lock.write_text(
        '{"host": "%s", "pid": %d, "target": "t", "staging": "s"}' % (__import__("socket").gethostname(), 1)
    )
    staging = _folder(tmp_path / "_staging" / "table-x", "x")
    with pytest.raises(CommitConflict, match=r"table/run_date=1.*another job.*pid 1"):
        commit_directory(LocalFS(), staging, str(tmp_path / "table" / "run_date=1"), str(lock), wait_s=0.5)
    assert _content(Path(staging)) == {"x"}  # nothing moved


@pytest.mark.spark
def test_two_spark_jobs_writing_one_partition_at_once_leave_one_jobs_rows(tmp_path, spark):
    from profile_features.spark.io import write_atomic

    table = str(tmp_path / "t")
    frames = {n: spark.createDataFrame(pd.DataFrame({"job": [n] * 50, "x": range(50)})).repartition(4) for n in "ab"}
    errors = []

    def write(name):
        try:
            write_atomic(frames[name], table, "2026-01-01")
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = pd.read_parquet(Path(table) / "run_date=2026-01-01")
    assert len(rows) == 50 and rows.job.nunique() == 1
    assert not list((tmp_path / "_staging").glob("t.lock")) and not list((tmp_path / "_staging").glob("*replaced*"))
