"""Evaluate's work folders (`profile-features evaluate --workdir`): personal data outside data_dir.

An evaluation keeps, per run (`full`, and `cold` when the cold slice is truncated), a private Feast
repo whose `data` folder has the data_dir layout and its own SQLite online store; the cold run's cut
inputs (`cold/raw/*.parquet`, raw interactions); the comparison's student checkpoints (no per-user
parameters: a user is their history) and the report (aggregates only). Each run's data folder is
forgotten like a data_dir (`forget_users` on it, its online store included), the cut inputs lose the
users' rows, and the report and checkpoints are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from profile_features.config import JobConfig

__all__ = ["EVALUATION_RUNS", "forget_in_evaluation"]

EVALUATION_RUNS = ("full", "cold")


def _forget_in_inputs(folder: Path, user_ids: list[str]) -> int:
    """Rows removed from the cut inputs' Parquet files (each rewritten through a temporary file)."""
    removed = 0
    for path in sorted(folder.glob("*.parquet")):
        frame = pd.read_parquet(path)
        if "user_id" not in frame.columns:
            continue
        keep = ~frame["user_id"].astype(str).isin(user_ids)
        if keep.all():
            continue
        removed += int((~keep).sum())
        scratch = path.with_suffix(".parquet.tmp")
        frame[keep].to_parquet(scratch, index=False)
        scratch.replace(path)
    return removed


def forget_in_evaluation(
    config: JobConfig, user_ids: list[str], workdir: str | Path, forget: Callable, spark=None
) -> dict:
    """Forget `user_ids` in one evaluation work folder; counts per run (no ids).

    Args:
        forget: `forget_users` (passed in: it calls this module).
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"forget: evaluation work folder {workdir} does not exist")
    runs = {}
    for name in EVALUATION_RUNS:
        repo = workdir / name / "repo"
        if (repo / "data").is_dir():
            scoped = config.model_copy(update={"data_dir": str(repo / "data")})
            result = forget(
                scoped, user_ids, repo=repo if (repo / "feature_store.yaml").exists() else None, spark=spark
            )
            runs[name] = {"rows_removed": result.record["rows_removed"], "audit": result.audit_path}
    return {"runs": runs, "cut_inputs_rows_removed": _forget_in_inputs(workdir / "cold" / "raw", user_ids)}
