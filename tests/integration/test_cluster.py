"""Every stage on a real multi-process Spark cluster, submitted as the README says.

A standalone master and two workers (each its own JVM, started from the pyspark
distribution on loopback) run the `spark_jobs/` entry files, submitted one by one with
`spark-submit --master spark://...`. The package reaches the executors only as the zip
passed with `--py-files`: a sitecustomize on the executors' PYTHONPATH removes the
editable install's finder, so the repository's source tree cannot be imported there.
The outputs must equal the session's `local[*]` pipeline run on the same data.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from profile_features.catalogue import ENCODERS, DataDir
from profile_features.spark.registry import SNAPSHOT_STAGES, VALIDATE
from tests.support.repo import REPO_ROOT, local_table
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.cluster]

BIN = Path(sys.executable).parent
# Drops setuptools' editable-install finder (and its path hook) in every executor Python.
SITECUSTOMIZE = """
import sys
def _editable(obj):
    return (getattr(obj, "__module__", "") or type(obj).__module__).startswith("__editable__")
sys.meta_path[:] = [f for f in sys.meta_path if not _editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not _editable(h)]
"""
STAGES = [s.name for s in (VALIDATE, *SNAPSHOT_STAGES)]  # the pipeline's stages in order: a spark_jobs/ entry each


def _wait_for(predicate, what: str, processes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"a cluster process exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(module_tmp):
    """(master URL, log folder): a standalone master and two 1-core workers, stopped by pid afterwards."""
    root = module_tmp / "cluster"
    root.mkdir()
    port, ui = free_port(), free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    spark_class = str(BIN / "spark-class")

    logs = []

    def start(name: str, *args: str) -> subprocess.Popen:
        logs.append(open(root / f"{name}.log", "w"))  # noqa: SIM115 - closed after the process stops
        return subprocess.Popen(
            [spark_class, *args], stdout=logs[-1], stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    processes = [
        start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui),
        )  # fmt: skip
    ]
    url = f"spark://127.0.0.1:{port}"

    def alive_workers() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as response:
                return len([w for w in json.load(response)["workers"] if w["state"] == "ALIVE"])
        except OSError:
            return -1

    try:
        _wait_for(lambda: alive_workers() >= 0, "the master", processes)
        for n in range(2):
            processes.append(
                start(
                    f"worker-{n}",
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "3g",
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(root / f"work-{n}"),
                )
            )
        _wait_for(lambda: alive_workers() == 2, "two workers", processes)
        yield url, root
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def shipped(module_tmp):
    """The package zip (as the README builds it) and the sitecustomize folder for the executors."""
    root = module_tmp / "shipped"
    root.mkdir()
    package = root / "profile_features.zip"
    subprocess.run([sys.executable, "-m", "profile_features.packaging", str(package)], cwd=REPO_ROOT, check=True)
    hide = root / "hide_source"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return package, hide


def _submit(cluster, shipped, script: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    url, _ = cluster
    package, hide = shipped
    command = [
        str(BIN / "spark-submit"),
        "--master",
        url,
        "--executor-cores",
        "1",
        "--executor-memory",
        "1500m",
        "--py-files",
        str(package),
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        f"spark.executorEnv.PYTHONPATH={hide}",
        str(script),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=hide)
    assert result.returncode == 0, f"{script.name}: {result.stderr[-4000:]}"
    return result


PROBE = """
import importlib.machinery, json, sys
from pyspark.sql import SparkSession

def where(_):
    import profile_features
    shipped = [p for p in sys.path if p.endswith("profile_features.zip")]
    rest = [p for p in sys.path if p not in shipped]
    return json.dumps({
        "file": profile_features.__file__,
        "shipped": shipped,
        "without_zip": importlib.machinery.PathFinder.find_spec("profile_features", rest) is not None,
        "editable_finder": any("__editable__" in str(f) for f in sys.meta_path),
    })

spark = SparkSession.builder.getOrCreate()
print("PROBE", json.dumps(spark.sparkContext.parallelize(range(4), 4).map(where).distinct().collect()))
"""


def test_executors_import_the_package_only_from_the_shipped_zip(cluster, shipped, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    result = _submit(cluster, shipped, script)
    answers = [json.loads(a) for a in json.loads(result.stdout.split("PROBE ", 1)[1].splitlines()[0])]
    assert answers
    for answer in answers:
        assert ".zip" in answer["file"] and answer["shipped"], answer
        assert not answer["without_zip"] and not answer["editable_finder"], answer


def _row_cosines(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = np.stack(a).astype(np.float64), np.stack(b).astype(np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_every_stage_on_the_cluster_equals_the_local_run(cluster, shipped, pipeline_run, tmp_path):
    local = pipeline_run["config"]
    cutoff = pipeline_run["cutoffs"][0]
    data_dir = (tmp_path / "data").as_uri()
    job = {
        "data_dir": data_dir,
        "inputs": local.inputs.model_dump(mode="json"),
        "student": {"overrides": list(local.student.overrides)},
        # The local run's encoder export, fetched by URI on the executors (exporting is tested elsewhere).
        "embedding": {"export_dir": DataDir(local.data_dir).root(ENCODERS)},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    for stage in STAGES:
        args = ["--config", str(tmp_path / "job.yaml")]
        if stage != "validate_inputs":
            args += ["--set", f"history.cutoff={cutoff.isoformat()}"]
        _submit(cluster, shipped, REPO_ROOT / "spark_jobs" / f"{stage}.py", *args)

    from profile_features.config import JobConfig

    remote = JobConfig(data_dir=data_dir)

    def both(table: str, key: str = "user_id") -> tuple[pd.DataFrame, pd.DataFrame]:
        path = lambda config: local_table(config, table) / f"run_date={cutoff:%Y-%m-%d}"  # noqa: E731
        return tuple(pd.read_parquet(path(c)).sort_values(key).reset_index(drop=True) for c in (local, remote))

    validated = [pd.read_parquet(local_table(c, "validated/interactions")) for c in (local, remote)]
    assert len(validated[0]) == len(validated[1]) > 0
    ours, theirs = both("histories")
    assert ours.history_hash.tolist() == theirs.history_hash.tolist() and len(ours) > 0
    ours, theirs = both("profiles")
    assert ours.profile_text.tolist() == theirs.profile_text.tolist()
    # The encoder's float sums depend on the batch a text lands in (padding to the batch's longest text) and on
    # the executor's thread count, which differ on the cluster: single values moved by up to 1.4e-4, cosines stay
    # above 1 - 1e-6 (a different text or model moves the cosine by orders of magnitude more).
    ours, theirs = both("user_profile_embeddings")
    assert _row_cosines(ours.profile_embedding, theirs.profile_embedding).min() > 1 - 1e-6
    ours, theirs = both("item_text_embeddings", "item_id")
    assert _row_cosines(ours.item_text_embedding, theirs.item_text_embedding).min() > 1 - 1e-6
    ours, theirs = both("user_semantic")
    assert ours.profile_transform_id.tolist() == theirs.profile_transform_id.tolist()
    assert ours.profile_cluster.tolist() == theirs.profile_cluster.tolist()
    ours, theirs = both("user_student")
    # The student reads the item text vectors, equal only up to that noise, so its weights (and the checkpoint id,
    # their sha256) differ in the last bits; the users' vectors must still point the same way.
    for side in (ours, theirs):
        assert side.student_checkpoint_id.nunique() == 1
        assert re.fullmatch(r"student-[0-9a-f]{12}", side.student_checkpoint_id[0])
    assert _row_cosines(ours.student_embedding, theirs.student_embedding).min() > 0.999

    # The refresh plan joins and scores on the executors; the budget's users are the local run's.
    plan = tmp_path / "plan.parquet"
    run_date = f"{cutoff:%Y-%m-%d}"
    _submit(
        cluster, shipped, REPO_ROOT / "spark_jobs" / "refresh_plan.py",
        "--config", str(tmp_path / "job.yaml"), "--budget", "7", "--run-date", run_date, "--out", str(plan),
    )  # fmt: skip
    from profile_features.spark.refresh_plan_job import build_refresh_plan

    expected, _ = build_refresh_plan(local.data_dir, budget=7, run_date=run_date)
    planned = pd.read_parquet(plan)
    assert len(planned) == 7 and planned.user_id.tolist() == expected.user_id.tolist()
    assert planned.reason.tolist() == expected.reason.tolist()


def test_the_stream_runs_on_the_cluster(cluster, shipped, pipeline_run, tmp_path):
    """The stream job submitted to the cluster: events and a new item reach the Feast online store, and the
    user's value is the checkpoint's score of the history written down by hand (tests/integration/test_stream)."""
    from feast import FeatureStore

    from profile_features.catalogue import HISTORIES
    from tests.integration.test_stream import _expected, _newest, _scenario, _setup, _write_files
    from tests.integration.test_stream_items import NEW_ITEM, _land_items

    config, data, repo, events = _setup(tmp_path, pipeline_run)
    scenario = _scenario(data, pipeline_run)
    _write_files(events, scenario["files"])
    incoming = tmp_path / "items"
    incoming.mkdir()
    _land_items(incoming, [NEW_ITEM])
    job = config.model_dump(mode="json")
    job["stream"]["items_source"] = {"path": str(incoming), "format": "csv"}
    job["embedding"]["export_dir"] = DataDir(pipeline_run["config"].data_dir).root(ENCODERS)  # as exported locally
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    _submit(cluster, shipped, REPO_ROOT / "spark_jobs" / "stream_student.py", "--config", str(tmp_path / "job.yaml"))

    store = FeatureStore(repo_path=str(repo))
    base = list(_newest(data, HISTORIES).set_index("user_id").item_ids[scenario["known"]])
    users = [(scenario["known"], base), (scenario["new"], [])]
    online = store.get_online_features(
        features=["user_student:student_embedding"], entity_rows=[{"user_id": u} for u, _ in users]
    ).to_dict(include_event_timestamps=True)
    for index, (user, prefix) in enumerate(users):
        expected, newest = _expected(data, scenario, user, prefix)
        np.testing.assert_allclose(np.asarray(online["student_embedding"][index], np.float32), expected, atol=1e-4)
        assert online["student_embedding__ts"][index] == int(newest.timestamp())
    item = store.get_online_features(
        features=["item_text:item_text", "item_student:student_item_seen"], entity_rows=[{"item_id": NEW_ITEM[0]}]
    ).to_dict()
    assert item["item_text"][0].startswith(NEW_ITEM[1]) and item["student_item_seen"][0] is False
