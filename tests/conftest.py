"""Shared fixtures: small generated data, one local SparkSession, the real encoder,
a real redis-server on a free port, and one pipeline run reused by Spark/Feast tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from profile_features.config import EmbeddingConfig, JobConfig, SampleConfig, SparkConfig
from profile_features.datasets import generate_sample

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_benchmark(name: str):
    """A script under benchmarks/ as a module (they are scripts, not a package)."""
    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def small_sample():
    return generate_sample(SampleConfig(users=40, items=60, mean_interactions=15, seed=3))


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


def local_table(config: JobConfig, name: str) -> Path:
    """The local folder of a table whose `data_dir` is a local path or a file:// URI."""
    from profile_features import storage

    return Path(storage.filesystem(config.table_path(name))[1])


def make_repo(tmp_path, data_dir, online_store=None):
    """A copy of the shipped feature repo on `data_dir`, with its own registry and online store."""
    from profile_features.pipeline import private_repo

    return private_repo(REPO_ROOT / "feature_repo", tmp_path / "repo", data_dir, online_store)


@pytest.fixture(scope="session")
def materialized(tmp_path_factory, pipeline_run):
    """The session pipeline's tables applied and materialized into a SQLite online store."""
    from profile_features.pipeline import apply_and_materialize

    repo = make_repo(tmp_path_factory.mktemp("feast"), pipeline_run["data_dir"])
    apply_and_materialize(repo)
    return repo


def start_redis(port: int, workdir: Path) -> subprocess.Popen:
    """Start a real redis-server on `port` and wait until it answers PING."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: `make test` installs it (apt-get install redis-server)")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("redis-server did not start")


def stop_redis(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


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
