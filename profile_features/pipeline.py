"""End-to-end orchestration: inputs -> snapshots -> Feast, as the demo and examples run it.

Each step is the same stage function a `spark_jobs/` entry file calls; here they
share one SparkSession so the whole run takes minutes, not a session start per stage.
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

from profile_features.config import InputsConfig, JobConfig, TableInput
from profile_features.datasets.sample import SampleData

__all__ = [
    "REPO_FILES",
    "log",
    "write_inputs",
    "add_demo_bad_rows",
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


def add_demo_bad_rows(sample: SampleData) -> SampleData:
    """Append one row of each kind the validator rejects, so the demo shows the path."""
    first = sample.interactions.iloc[0]
    bad = pd.DataFrame(
        [
            {**first, "user_id": None},
            {**first, "item_id": "no-such-item"},
            {**first},  # exact duplicate
        ]
    )
    interactions = pd.concat([sample.interactions, bad], ignore_index=True)
    # An unparseable timestamp cannot live in a timestamp column: write it as text.
    interactions["timestamp"] = interactions["timestamp"].map(lambda t: t.isoformat())
    interactions.loc[len(interactions)] = {**first, "timestamp": "yesterday-ish"}
    items = pd.concat(
        [
            sample.items,
            pd.DataFrame(
                [
                    {**sample.items.iloc[0], "title": "A duplicate id"},
                    {**sample.items.iloc[1], "item_id": "i-empty", "title": ""},
                ]
            ),
        ],
        ignore_index=True,
    )
    return SampleData(items=items, interactions=interactions, user_tastes=sample.user_tastes)


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


def run_validation(spark, config: JobConfig) -> dict:
    """The validation stage, logged: read = accepted + rejected per table."""
    from profile_features.spark import stages

    log("validating inputs")
    summary = stages.run_validate(spark, config)
    for table, counts in summary["tables"].items():
        log(
            f"  {table}: read {counts['read']} = accepted {counts['accepted']} + rejected {counts['rejected']} "
            f"{counts['rejected_by_reason'] or ''}"
        )
    return summary


def run_snapshots(spark, config: JobConfig, cutoffs: Sequence[datetime]) -> list[dict]:
    """One snapshot per cutoff from the validated tables: every stage after validation."""
    from profile_features.spark import stages
    from profile_features.spark.profile_job import run_profiles
    from profile_features.spark.semantic_job import run_semantic_columns

    snapshots = []
    for cutoff in cutoffs:
        snapshot_config = config.model_copy(update={"history": config.history.model_copy(update={"cutoff": cutoff})})
        log(f"snapshot {cutoff:%Y-%m-%d}: histories")
        histories = stages.run_histories(spark, snapshot_config)
        log(f"  {histories['users']} users, {histories['interactions_before_cutoff']} interactions before the cutoff")
        log(f"snapshot {cutoff:%Y-%m-%d}: profiles ({config.profile.generator})")
        profiles = run_profiles(spark, snapshot_config)
        log(f"snapshot {cutoff:%Y-%m-%d}: embeddings (profiles and item texts)")
        embeddings = stages.run_embeddings(spark, snapshot_config)
        encoder = embeddings["encoder"]
        counts = f"{embeddings['profiles']} profile vectors, {embeddings['items']} item vectors"
        log(f"  {counts} ({encoder['name'] or 'torch'})")
        if encoder["fallback_reason"]:
            log(f"  embedding.backend fell back to torch: {encoder['fallback_reason']}")
        log(f"snapshot {cutoff:%Y-%m-%d}: semantic columns (PCA, clusters, item semantic IDs)")
        semantic = run_semantic_columns(spark, snapshot_config)
        for kind, info in semantic["transforms"].items():
            log(
                f"  {kind}: transform {info['transform_id']} ({'fitted now' if info['fitted_now'] else 'reused'}, "
                f"{info['explained_variance']:.0%} of variance)"
            )
        if semantic.get("semantic_ids"):
            info = semantic["semantic_ids"]
            how = "fitted now" if info["fitted_now"] else "reused"
            log(
                f"  item semantic IDs: transform {info['transform_id']} ({how}, "
                f"{info['levels']} levels x {info['codes']} codes)"
            )
        snapshot = {"histories": histories, "profiles": profiles, "embeddings": embeddings, "semantic": semantic}
        if config.student.enabled:
            from profile_features.spark.student_job import run_score_student, run_train_student

            if config.student.checkpoint is None:
                log(f"snapshot {cutoff:%Y-%m-%d}: training the distilled student")
                snapshot["train_student"] = run_train_student(spark, snapshot_config)
                trained = snapshot["train_student"]
                log(
                    f"  checkpoint {trained['checkpoint_id']} on {trained['users']} users: best epoch "
                    f"{trained['best_epoch']}, validation NDCG@10 {_metric(trained['best_valid'])} (most popular "
                    f"{_metric(trained['popularity_valid'])})"
                )
                guard = trained.get("guard") or {}
                log(f"  shipped {trained.get('variant', 'configured')}: {guard.get('reason', 'no guard')}")
            log(f"snapshot {cutoff:%Y-%m-%d}: scoring users with the student")
            snapshot["score_student"] = run_score_student(spark, snapshot_config)
            log(
                f"  {snapshot['score_student']['scored']} users scored, "
                f"{snapshot['score_student']['with_drift']} with a profile drift"
            )
        snapshots.append(snapshot)
    return snapshots


def _metric(values: dict | None, name: str = "ndcg@10") -> str:
    return "n/a" if not values else f"{values[name]:.4f}"


def prepare_repo(source: Path, target: Path) -> Path:
    """Copy the feature repo definitions (not its data) to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        shutil.copy2(source / name, target / name)
    return target


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
