"""Shared fixtures for tests/unit and tests/integration: small generated data, one local SparkSession,
the real encoder and its exports, a real redis-server on a free port, a moto S3 server, and one pipeline
run reused by Spark/Feast tests. Plain helpers (paths, ports, servers, test doubles) live in tests/support."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from profile_features.config import EmbeddingConfig, JobConfig, SampleConfig, SparkConfig
from profile_features.datasets import generate_sample
from profile_features.embeddings import default_model_path
from profile_features.encoder_export import ensure_export
from tests.support.repo import make_repo
from tests.support.servers import free_port, start_redis, stop_redis

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# What puts a test in tests/integration (tests/README.md): a marker, or a fixture that starts a server.
INTEGRATION_MARKERS = ("spark", "feast", "redis", "cluster")
INTEGRATION_FIXTURES = {"spark", "pipeline_run", "materialized", "redis_server", "s3_bucket"}
UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(config, items):
    """tests/unit starts nothing: a unit test with an integration marker or fixture fails the collection."""
    misplaced = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(UNIT)
        and (
            any(item.get_closest_marker(m) for m in INTEGRATION_MARKERS)
            or INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
    ]
    if misplaced:
        raise pytest.UsageError(f"these start Spark, Feast or a server: move them to tests/integration: {misplaced}")


@pytest.fixture(scope="session")
def small_sample():
    return generate_sample(SampleConfig(users=40, items=60, mean_interactions=15, seed=3))


@pytest.fixture(scope="session")
def llm_sample():
    return generate_sample(SampleConfig(users=24, items=60, mean_interactions=20, seed=11))


@pytest.fixture(scope="session")
def spark():
    from profile_features.spark.session import build_spark

    session = build_spark(
        SparkConfig(master="local[2]", app_name="profile-features-tests", conf={"spark.sql.shuffle.partitions": "4"})
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def encoder():
    from profile_features.embeddings import cached_encoder

    return cached_encoder(EmbeddingConfig())


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """A folder for one test module's shared fixtures, deleted when the module's tests end unless one failed (as
    pytest keeps a failing test's tmp_path): a pipeline run exports the encoder into its data_dir (~180 MB), and
    keeping every module's filled a CI disk before the session ended."""
    failed = request.session.testsfailed
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield folder
    if request.session.testsfailed == failed:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def exports(module_tmp):
    directory = module_tmp / "encoders"
    directory.mkdir()
    directory = str(directory)
    return directory, {
        p: ensure_export(default_model_path(), "all-MiniLM-L6-v2", p, directory) for p in ("fp32", "int8")
    }


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, spark, small_sample):
    """Validate + two snapshots of the small sample, as the demo runs them, with `data_dir` a file://
    URI (so every stage addresses its tables and artifacts by URI); `data_dir` in the result is the
    same folder as a plain path, for the readers in the tests."""
    from profile_features.pipeline import run_pipeline, snapshot_cutoffs, write_inputs

    root = tmp_path_factory.mktemp("pipeline")
    inputs = write_inputs(small_sample.interactions, small_sample.items, root / "raw")
    config = JobConfig(
        data_dir=(root / "data").as_uri(),
        inputs=inputs,
        student={"overrides": ["train.epochs=3", "body.max_len=20", "train.num_threads=1"]},
    )
    cutoffs = snapshot_cutoffs(small_sample.interactions["timestamp"], [0.6, 1.0])
    summaries = run_pipeline(spark, config, cutoffs)
    return {"config": config, "cutoffs": cutoffs, "summaries": summaries, "root": root, "data_dir": root / "data"}


@pytest.fixture(scope="session")
def materialized(tmp_path_factory, pipeline_run):
    """The session pipeline's tables applied and materialized into a SQLite online store."""
    from profile_features.pipeline import apply_and_materialize

    repo = make_repo(tmp_path_factory.mktemp("feast"), pipeline_run["data_dir"])
    apply_and_materialize(repo)
    return repo


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free port for this test session, stopped by its own pid."""
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield {"host": "127.0.0.1", "port": port, "process": process}
    stop_redis(process)


@pytest.fixture(scope="module")
def s3_bucket():
    """A moto S3 server on a free loopback port and an empty bucket; the AWS environment points at it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto server did not start on {endpoint}")
            time.sleep(0.2)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from pyarrow import fs

        fs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1", allow_bucket_creation=True
        ).create_dir("features")
        yield "s3a://features/pf"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        server.wait(timeout=30)
