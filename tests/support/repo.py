"""The checkout's own folders for the tests: its root, the scripts under benchmarks/, a private copy of
feature_repo/, and the local folder of a table a run wrote."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from profile_features.config import JobConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(name: str):
    """A script under benchmarks/ as a module (they are scripts, not a package)."""
    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_table(config: JobConfig, name: str) -> Path:
    """The local folder of a table whose `data_dir` is a local path or a file:// URI."""
    from profile_features import storage

    return Path(storage.filesystem(config.table_path(name))[1])


def make_repo(tmp_path, data_dir, online_store=None):
    """A copy of the shipped feature repo on `data_dir`, with its own registry and online store."""
    from profile_features.pipeline import private_repo

    return private_repo(REPO_ROOT / "feature_repo", tmp_path / "repo", data_dir, online_store)
