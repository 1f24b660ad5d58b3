"""Training CLI.

    python -m student.train --config configs/student.yaml \
        --interactions interactions.parquet --profiles profile_embeddings.parquet --out ckpt_dir \
        [--validate] [--set train.epochs=50 --set distill.alpha=0.2]

`--interactions`: Parquet or CSV with `user_id`, `item_id`, `timestamp`.
`--profiles` (optional): Parquet with `user_id`, `profile_embedding` (float list); the profiles
must have been written from interactions the student trains on (no later ones).
`--validate` (what the pipeline does): hold out each user's last interaction (users with three or
more) to pick the epoch by validation NDCG@10, restore that epoch's weights, and compare it with
most-popular on the same targets; when no epoch beats most-popular, the checkpoint ranks items by
popularity (flagged `ranks_by_popularity`). Without it the student trains on everything for
`train.epochs` epochs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.logs import add_verbosity_arguments, configure_logging, verbosity_level
from student.checkpoint import DataStats, save_checkpoint
from student.config import load_student_config
from student.data import ItemIndex, user_sequences
from student.sources import HeldOutLast, ParquetUsers, TrainingUsers
from student.training import build_training_data, fit

__all__ = ["read_table", "read_profiles", "train_from_frames", "train_from_parquet", "train_source", "main"]

log = logging.getLogger(__name__)


def read_table(path: str) -> pd.DataFrame:
    """Read a Parquet (file or directory) or CSV table."""
    return pd.read_csv(path) if path.lower().endswith(".csv") else pd.read_parquet(path)


def read_profiles(path: str) -> dict[str, np.ndarray]:
    """user_id -> float32 profile embedding, skipping null rows."""
    return _profile_dict(read_table(path))


def _profile_dict(frame: pd.DataFrame | None) -> dict[str, np.ndarray] | None:
    if frame is None:
        return None
    return {
        user: np.asarray(vec, dtype=np.float32)
        for user, vec in zip(frame["user_id"].astype(str), frame["profile_embedding"])
        if vec is not None and len(vec)
    }


def train_from_frames(
    cfg, interactions: pd.DataFrame, profiles: pd.DataFrame | None, out: str | Path, validate: bool = False
) -> dict:
    """Train on in-memory tables and write a checkpoint to `out` (the CLI and the benchmarks call this).

    Args:
        cfg: a `StudentConfig`.
        interactions: `user_id`, `item_id`, `timestamp` (only what the student may see).
        profiles: `user_id`, `profile_embedding`, written from those same interactions; None trains plain SASRec.
        validate: hold out the last item of each user with 3+ items for epoch selection (users with
            fewer train on everything they have).

    Returns:
        see `train_source`.
    """
    item_index = ItemIndex.from_items(interactions["item_id"])
    data = build_training_data(user_sequences(interactions), item_index, _profile_dict(profiles))
    return train_source(cfg, data, out, validate)


def train_from_parquet(
    cfg, uri: str, item_ids, profile_dim: int, out: str | Path, validate: bool = False, batch_rows: int = 4096
) -> dict:
    """Train on a Parquet dataset of users (`user_id`, `item_ids` oldest -> newest, optional
    `profile_embedding`) streamed `batch_rows` users at a time: driver memory is the model, the
    item index and one chunk, however many users there are (the pipeline's Spark job calls this)."""
    data = ParquetUsers(uri, ItemIndex.from_items(item_ids), profile_dim, batch_rows)
    return train_source(cfg, data, out, validate)


def train_source(cfg, data: TrainingUsers, out: str | Path, validate: bool = False) -> dict:
    """Fit on `data` (optionally holding out each user's last item for epoch selection) and save.

    Returns:
        checkpoint_id, out, best_epoch, best_valid, popularity_valid, ranks_by_popularity and the data sizes.
    """
    valid = None
    if validate:
        data = HeldOutLast(data, cfg.train.max_valid_users, cfg.train.seed)
        valid = data.validation()
    result = fit(cfg, data, valid, log=log.info)
    seen = result.data
    held_out = len(valid[1]) if valid else 0
    stats = DataStats(
        num_users=seen.users,
        num_items=len(data.item_index),
        num_interactions=seen.interactions + held_out,
        profile_dim=data.profile_dim,
        users_with_profile=seen.users_with_profile,
        extra={
            "best_epoch": result.best_epoch,
            "best_valid": result.best_valid,
            "popularity_valid": result.popularity_valid,
            "train_seconds": result.seconds,
        },
    )
    features = getattr(data, "item_features", None)
    ckpt_id = save_checkpoint(out, result.model, data.item_index, stats, features.provenance if features else None)
    if result.ranks_by_popularity:
        log.warning(
            "no epoch of %s beat most-popular on validation (NDCG@10 %.4f); its checkpoint ranks items by popularity",
            cfg.name,
            result.popularity_valid["ndcg@10"],
        )
    return {
        "checkpoint_id": ckpt_id,
        "out": str(out),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "best_valid": result.best_valid,
        "popularity_valid": result.popularity_valid,
        "ranks_by_popularity": result.ranks_by_popularity,
        "users": seen.users,
        "users_with_profile": seen.users_with_profile,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m student.train", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=None, help="student YAML (defaults when omitted)")
    ap.add_argument("--interactions", required=True)
    ap.add_argument("--profiles", default=None)
    ap.add_argument("--out", required=True, help="checkpoint directory (replaced atomically)")
    ap.add_argument("--validate", action="store_true", help="hold out last item per user for early stopping")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_verbosity_arguments(ap)
    args = ap.parse_args(argv)
    configure_logging(verbosity_level(args.verbose, args.quiet), args.verbose)  # epochs go to stderr

    cfg = load_student_config(args.config, args.overrides)
    interactions = read_table(args.interactions)
    profiles = read_table(args.profiles) if args.profiles else None
    result = train_from_frames(cfg, interactions, profiles, args.out, validate=args.validate)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
