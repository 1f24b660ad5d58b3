"""End-to-end orchestration: inputs -> snapshots -> Feast, as the demo and examples run it.

The stages and their order are `spark.registry`'s, the same ones a `spark_jobs/` entry file runs;
here they share one SparkSession so the whole run takes minutes, not a session start per stage.
Each stage returns a typed result: the log shows its `describe()`, the caller gets its `summary()`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from profile_features.catalogue import Snapshot
from profile_features.config import InputsConfig, JobConfig, TableInput

__all__ = [
    "REPO_FILES",
    "log",
    "write_inputs",
    "snapshot_cutoffs",
    "run_pipeline",
    "run_validation",
    "run_snapshots",
    "prepare_repo",
    "feast_cli",
    "apply_and_materialize",
    "build_feature_repo",
]

logger = logging.getLogger(__name__)

REPO_FILES = ("feature_store.yaml", "feature_store.redis.yaml", "features.py", "profile_features.yaml", ".feastignore")
_T0 = time.monotonic()


def log(message: str) -> None:
    logger.info("[%6.1fs] %s", time.monotonic() - _T0, message)


def write_inputs(interactions: pd.DataFrame, items: pd.DataFrame, raw_dir: Path) -> InputsConfig:
    """Write inputs the way a user would hand them over: interactions Parquet, items CSV."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    interactions_path, items_path = raw_dir / "interactions.parquet", raw_dir / "items.csv"
    interactions.to_parquet(interactions_path, index=False)
    items.to_csv(items_path, index=False)
    return InputsConfig(interactions=TableInput(path=str(interactions_path)), items=TableInput(path=str(items_path)))


def snapshot_cutoffs(timestamps: pd.Series, quantiles: Sequence[float]) -> list[datetime]:
    """Cutoffs at whole days: each quantile of the interaction times, floored to midnight UTC.

    A quantile of 1.0 means the day after the last interaction (everything is history).
    """
    cutoffs = []
    for q in quantiles:
        if q >= 1.0:
            day = timestamps.max().floor("D") + pd.Timedelta(days=1)
        else:
            day = timestamps.quantile(q).floor("D")
        cutoffs.append(day.to_pydatetime().astimezone(timezone.utc))
    return sorted(set(cutoffs))


def run_pipeline(spark, config: JobConfig, cutoffs: Sequence[datetime]) -> dict:
    """Validate inputs, then build one snapshot (histories, profiles, embeddings, ...) per cutoff."""
    validate = run_validation(spark, config)
    return {"validate": validate, "snapshots": run_snapshots(spark, config, cutoffs)}


def _logged(stage, spark, config: JobConfig, snapshot: Snapshot | None = None) -> dict:
    """Run one registry stage, log what it did, return its JSON summary."""
    where = f"snapshot {snapshot.run_date}: " if snapshot is not None else ""
    log(f"{where}{stage.heading(config)}")
    result = stage.run(spark, config, snapshot)
    for line in result.describe():
        log(f"  {line}")
    return result.summary()


def run_validation(spark, config: JobConfig) -> dict:
    """The validation stage, logged: read = accepted + rejected per table."""
    from profile_features.spark.registry import VALIDATE

    return _logged(VALIDATE, spark, config)


def run_snapshots(spark, config: JobConfig, cutoffs: Sequence[datetime]) -> list[dict]:
    """One snapshot per cutoff from the validated tables: every enabled registry stage after validation,
    each given the snapshot (the config is not changed); a summary dict per stage, by its key."""
    from profile_features.spark.registry import SNAPSHOT_STAGES

    snapshots = []
    for cutoff in cutoffs:
        snapshot = Snapshot(config.data_dir, cutoff)
        snapshots.append(
            {stage.key: _logged(stage, spark, config, snapshot) for stage in SNAPSHOT_STAGES if stage.enabled(config)}
        )
    return snapshots


def prepare_repo(source: Path, target: Path) -> Path:
    """Copy the feature repo definitions (not its data) to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        shutil.copy2(source / name, target / name)
    return target


def private_repo(source: Path, target: Path, data_dir: str | Path, online_store: dict | None = None) -> Path:
    """A copy of the repo at `source` in `target` that reads `data_dir`, with its own registry and online store
    (SQLite in `target` unless `online_store` is given): a repo to apply and materialize beside a user's own."""
    import yaml

    repo = prepare_repo(source, target)
    settings = yaml.safe_load((repo / "profile_features.yaml").read_text()) or {}
    (repo / "profile_features.yaml").write_text(yaml.safe_dump({**settings, "data_dir": str(data_dir)}))
    store = yaml.safe_load((repo / "feature_store.yaml").read_text()) or {}
    store["registry"] = {**(store.get("registry") or {}), "path": str(target / "registry.db")}
    store["online_store"] = online_store or {"type": "sqlite", "path": str(target / "online.db")}
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(store))
    return repo


def feast_cli(repo: Path, *args: str, store_yaml: Path | None = None) -> str:
    """Run the real `feast` CLI on `repo` (optionally another feature_store.yaml);
    raise with its output if it fails."""
    feast = Path(sys.executable).with_name("feast")
    command = [str(feast) if feast.exists() else "feast", "-c", str(repo)]
    if store_yaml is not None:
        command += ["-f", str(Path(store_yaml).resolve())]
    command += list(args)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def apply_and_materialize(repo: Path, end: datetime | None = None, store_yaml: Path | None = None) -> None:
    """Check the online store, `feast apply`, then materialize up to `end` (default: now) with
    `materialize_repo`: first loads start at the data, not at now - ttl.

    Raises:
        OnlineStoreUnavailable: before anything runs, when the online store is unreachable.
        EmptyMaterialization: a view's first load found no rows.
    """
    from profile_features.feast.health import check_online_store
    from profile_features.feast.materialize import materialize_repo

    online = check_online_store(repo, store_yaml)
    log(f"feast apply ({repo}, online store {online})")
    feast_cli(repo, "apply", store_yaml=store_yaml)
    for load in materialize_repo(repo, end, store_yaml=store_yaml):
        log(f"materialized {load.describe()}")


def build_feature_repo(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    workdir: Path,
    quantiles: Sequence[float],
    spark_config=None,
    source_repo: Path | None = None,
    student_overrides: Sequence[str] = (),
    cutoffs: Sequence[datetime] | None = None,
) -> tuple[Path, list[datetime]]:
    """Run the pipeline into `workdir/repo/data` and `feast apply` a copy of the shipped repo on it.

    Snapshots are cut at the `quantiles` of interaction time, or at `cutoffs` when given
    (to rebuild a changed dataset at the same times).

    Returns:
        (repo path, snapshot cutoffs).
    """
    from profile_features.config import SparkConfig
    from profile_features.spark.session import build_spark

    source_repo = source_repo or Path(__file__).resolve().parents[1] / "feature_repo"
    repo = prepare_repo(source_repo, workdir / "repo")
    inputs = write_inputs(interactions, items, repo / "data" / "raw")
    config = JobConfig(
        data_dir=str(repo / "data"),
        inputs=inputs,
        spark=spark_config or SparkConfig(),
        student={"overrides": list(student_overrides)},
    )
    cutoffs = sorted(cutoffs) if cutoffs is not None else snapshot_cutoffs(interactions.timestamp, quantiles)
    run_pipeline(build_spark(config.spark), config, cutoffs)
    log("feast apply")
    feast_cli(repo, "apply")
    return repo, cutoffs
