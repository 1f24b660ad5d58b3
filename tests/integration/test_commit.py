"""The table commit protocol under real Spark jobs: read_table settles a writer killed mid-commit, and
two Spark jobs writing one partition at once leave one job's rows (the protocol: tests/unit/test_commit.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from tests.support.repo import REPO_ROOT
from tests.unit.test_commit import KILLED


@pytest.mark.spark
def test_read_table_settles_a_writer_killed_between_aside_and_move(tmp_path, spark):
    from profile_features.spark.io import read_table, write_atomic

    table = tmp_path / "t"
    write_atomic(spark.createDataFrame(pd.DataFrame({"job": ["old"] * 5})), str(table / "run_date=2026-01-01"))
    killed = tmp_path / "_staging" / "t-killed"
    killed.mkdir()
    pd.DataFrame({"job": ["killed"] * 7}).to_parquet(killed / "part-0.parquet")
    partition = table / "run_date=2026-01-01"
    lock = str(tmp_path / "_staging" / "t.lock")
    result = subprocess.run([sys.executable, "-c", KILLED, str(killed), str(partition), lock, "aside"], cwd=REPO_ROOT)
    assert result.returncode == 9 and not partition.exists()  # the gap a reader used to fall into
    rows = read_table(spark, str(table)).toPandas()
    assert rows.job.tolist() == ["killed"] * 7 and rows.run_date.astype(str).unique().tolist() == ["2026-01-01"]
    assert list((tmp_path / "_staging").iterdir()) == []


@pytest.mark.spark
def test_two_spark_jobs_writing_one_partition_at_once_leave_one_jobs_rows(tmp_path, spark):
    from profile_features.spark.io import write_atomic

    table = str(tmp_path / "t")
    frames = {n: spark.createDataFrame(pd.DataFrame({"job": [n] * 50, "x": range(50)})).repartition(4) for n in "ab"}
    errors = []

    def write(name):
        try:
            write_atomic(frames[name], f"{table}/run_date=2026-01-01")
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
