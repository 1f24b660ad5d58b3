"""The output contract of the spark_jobs/ entry files, checked on real spark-submit runs: stderr
holds a readable log (Spark's INFO flood kept out by the shipped log4j2 profile), stdout holds only
the JSON summary, and a user error is one line and a non-zero exit in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.repo import REPO_ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")

TINY_JOB = """
import logging
import sys

from profile_features.spark.entry import run_job, run_main


def stage(spark, config):
    logging.getLogger("profile_features.tiny").info("tiny stage ran")
    print("a stray print")  # a library's print: must not reach stdout
    total = spark.range(1000).selectExpr("sum(id) AS s").first().s
    return {
        "sum": total,
        "driver_memory": spark.sparkContext.getConf().get("spark.driver.memory"),
        "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    }


def main(argv=None):
    return run_job(stage, "tiny", argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
"""

# What the JVM prints before any Python runs (only --driver-java-options can quiet these).
JVM_PREAMBLE = ("WARNING: Using incubator modules", "Using Spark's default log4j profile", "WARN Utils:")


def _env() -> dict:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not any(p in line for p in JVM_PREAMBLE)]


@pytest.fixture(scope="module")
def tiny_job(module_tmp) -> Path:
    if not SPARK_SUBMIT.exists():
        pytest.skip("spark-submit is not in this virtualenv")
    folder = module_tmp / "tiny"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY_JOB)
    return folder / "tiny.py"


@pytest.mark.parametrize("stderr_to", ["pipe", "file"])
def test_spark_submit_stdout_is_only_json_and_stderr_is_short(tiny_job, tmp_path, stderr_to):
    """`file` is `2> job.log`: our lines go through the JVM's System.err, so that its own later
    lines cannot overwrite them (a file has one offset per open)."""
    args = [
        str(SPARK_SUBMIT),
        "--master",
        "local[1]",
        str(tiny_job),
        "--set",
        "spark.conf.spark.driver.memory=1g",
        "--set",
        "spark.conf.spark.sql.shuffle.partitions=3",
        "--summary-json",
        str(tmp_path / "summary.json"),
    ]
    log = tmp_path / "job.log"
    with open(log, "w") as err_file:
        run = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr_to == "pipe" else err_file,
            text=True,
            env=_env(),
            timeout=300,
        )
    stderr = run.stderr if stderr_to == "pipe" else log.read_text()
    assert run.returncode == 0, stderr
    summary = json.loads(run.stdout)  # the whole of stdout is one JSON document
    assert summary == {"sum": 499500, "driver_memory": "1g", "partitions": "3"}  # dotted --set reached SparkConf
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    ours = _ours(stderr)
    assert any("INFO profile_features.tiny: tiny stage ran" in line for line in ours), stderr
    assert any("pass --driver-memory 1g to spark-submit" in line for line in ours), stderr  # too late for the JVM
    assert "a stray print" in stderr
    assert "Traceback" not in stderr and " INFO SparkContext" not in stderr, stderr
    assert len(stderr.splitlines()) <= 10, stderr  # Spark's default profile: ~120 lines for this job


def test_spark_submit_unknown_key_is_one_line_and_exit_2(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("history:\n  max_lenght: 20\n")
    run = subprocess.run(
        [str(SPARK_SUBMIT), "--master", "local[1]", str(REPO_ROOT / "spark_jobs" / "build_histories.py")]
        + ["--config", str(job)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert run.returncode == 2 and run.stdout == ""
    assert _ours(run.stderr) == [f"error: invalid config {job}: history.max_lenght: unknown key (not a setting here)"]


def test_a_missing_input_fails_before_spark_starts(tmp_path):
    """Plain `python` run: the preflight fails before a JVM is started (no Spark line at all)."""
    (tmp_path / "items.csv").write_text("item_id,title\ni1,Alpha\n")
    job = {
        "data_dir": str(tmp_path / "data"),
        "inputs": {
            "interactions": {"path": str(tmp_path / "events.csv")},
            "items": {"path": str(tmp_path / "items.csv")},
        },
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "spark_jobs" / "validate_inputs.py"), "--config", str(tmp_path / "job.yaml")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [f"error: {tmp_path / 'events.csv'}: interactions input not found"]
    assert elapsed < 30, elapsed  # imports only; before: after the items were validated and written (minutes)
    assert not (tmp_path / "data").exists()


def test_plain_python_run_is_quiet_too(tiny_job, tmp_path):
    """The demo and `evaluate` start Spark from plain python: the JVM gets the profile on its command line."""
    run = subprocess.run(
        [sys.executable, str(tiny_job), "--set", "spark.master=local[1]"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["sum"] == 499500
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr and len(lines) <= 6, run.stderr
