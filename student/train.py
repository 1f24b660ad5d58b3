"""Training CLI.

    python -m profile_features.student.train --config configs/student.yaml \
        --interactions interactions.parquet --profiles profile_embeddings.parquet --out ckpt_dir \
        [--validate] [--set train.epochs=50 --set distill.alpha=0.2]

`--interactions`: Parquet or CSV with `user_id`, `item_id`, `timestamp`.
`--profiles` (optional): Parquet with `user_id`, `profile_embedding` (float list); the profiles
must have been written from interactions the student trains on (no later ones).
`--items` (optional; needed by `items.text` / `items.sid`): Parquet with `item_id` and
`item_text_embedding` (float list) and/or semantic-ID codes `item_sid_0..L-1` (ints, -1 = none; codes
per level are taken as the largest code + 1), e.g. the pipeline's item_text_embeddings joined with
item_semantic.
`--validate` (what the pipeline does): the deployment guard (student/guard.py, `guard` in the
config): validate on the items after a cutoff inside the training period, ship the richest variant
(configured, without item content, plain SASRec) that passes against what would ship instead (not worse than
most-popular; better than plain SASRec when that is not worse than most-popular), else the popularity prior (flagged
`ranks_by_popularity`), refitted on everything for its validated epochs; the decision is in the
output, the checkpoint manifest and the served `student_variant`. Without it the student trains on
everything for `train.epochs` epochs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.logs import add_verbosity_arguments, configure_logging, verbosity_level
from profile_features.student.alignment import fit_output_rotation
from profile_features.student.checkpoint import DataStats, load_checkpoint, save_checkpoint
from profile_features.student.config import load_student_config
from profile_features.student.data import ItemIndex, user_timelines
from profile_features.student.guard import Replay, guarded_fit, replay_fit
from profile_features.student.items import ItemContent
from profile_features.student.sources import Cached, ParquetUsers, TrainingUsers
from profile_features.student.training import build_training_data, fit

__all__ = [
    "read_table",
    "read_profiles",
    "item_content",
    "train_from_frames",
    "train_from_parquet",
    "train_source",
    "main",
]

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
    cfg,
    interactions: pd.DataFrame,
    profiles: pd.DataFrame | None,
    out: str | Path,
    validate: bool = False,
    content: ItemContent | None = None,
    align_to: str | Path | None = None,
    replay: Replay | None = None,
) -> dict:
    """Train on in-memory tables and write a checkpoint to `out` (the CLI and the evaluation call this).

    Args:
        cfg: a `StudentConfig`.
        interactions: `user_id`, `item_id`, `timestamp` (only what the student may see).
        profiles: `user_id`, `profile_embedding`, written from those same interactions; None trains plain SASRec.
        validate: run the deployment guard (validation after a cutoff inside the training period; see
            student/guard.py) to pick the epochs and the variant that ships.
        content: the items' text vectors / semantic-ID codes (the index then covers the items they describe).
        align_to: a previous checkpoint whose served basis this one's vectors are mapped into.
        replay: without `validate`, repeat a validated run on all the data (its epochs and trending prior).

    Returns:
        see `train_source`.
    """
    ids = list(interactions["item_id"].astype(str))
    item_index = ItemIndex.from_items(ids + ([] if content is None else list(content.table["item_id"].astype(str))))
    features = None if content is None else content.features(item_index)
    timelines = user_timelines(interactions)
    histories = {user: items for user, (items, _) in timelines.items()}
    times = {user: when for user, (_, when) in timelines.items()}
    data = build_training_data(histories, item_index, _profile_dict(profiles), features, times)
    return train_source(cfg, data, out, validate, align_to, replay)


def train_from_parquet(
    cfg,
    uri: str,
    item_ids,
    profile_dim: int,
    out: str | Path,
    validate: bool = False,
    batch_rows: int = 4096,
    content: ItemContent | None = None,
    align_to: str | None = None,
) -> dict:
    """Train on a Parquet dataset of users (`user_id`, `item_ids` oldest -> newest, `item_times` aligned
    with them (validation needs them), optional `profile_embedding`) streamed `batch_rows` users at a
    time: driver memory is the model, the item table and one chunk, however many users there are (the
    pipeline's Spark job calls this); data up to `guard.cache_interactions` is read once and held.

    With `content` (the items' text vectors and semantic-ID codes) the index also covers the items it
    describes, so catalogue items no history contains are ranked by their content. `align_to`: the
    previous snapshot's checkpoint, whose served basis this one's vectors are mapped into (see `train_source`).
    """
    features = None
    if content is not None:
        item_index = ItemIndex.from_items([*map(str, item_ids), *map(str, content.table["item_id"])])
        features = content.features(item_index)
    else:
        item_index = ItemIndex.from_items(item_ids)
    data = ParquetUsers(uri, item_index, profile_dim, batch_rows, features)
    return train_source(cfg, data, out, validate, align_to)


def train_source(
    cfg,
    data: TrainingUsers,
    out: str | Path,
    validate: bool = False,
    align_to: str | Path | None = None,
    replay: Replay | None = None,
) -> dict:
    """Fit on `data` (with `validate`, through the deployment guard; with `replay`, as a recorded validated
    run went; else for `train.epochs`) and save.

    With `align_to` (a previous checkpoint), the saved checkpoint carries the orthogonal map into that
    checkpoint's served basis (student/alignment.py), so a ranker trained on its vectors reads these alike.

    Returns:
        checkpoint_id, out, variant (what shipped), guard (the decision and its figures, or None),
        best_epoch, epochs_run, best_valid, popularity_valid, ranks_by_popularity, train_seconds and
        the data sizes.
    """
    decision = None
    if validate:
        data = Cached(data, cfg.guard.cache_interactions)
        result, decision = guarded_fit(cfg, data, log=log.info)
    elif replay is not None:
        result = replay_fit(cfg, data, replay, log=log.info)
    else:
        result = fit(cfg, data, None, log=log.info)
    seen = result.data
    variant = decision.variant if decision is not None else "configured"
    guard = decision.as_dict() if decision is not None else None
    seconds = decision.seconds if decision is not None else result.seconds
    stats = DataStats(
        num_users=seen.users,
        num_items=len(data.item_index),
        num_interactions=seen.interactions,
        profile_dim=data.profile_dim,
        users_with_profile=seen.users_with_profile,
        extra={
            "variant": variant,
            "guard": guard,
            "best_epoch": result.best_epoch,
            "best_valid": result.best_valid,
            "popularity_valid": result.popularity_valid,
            "train_seconds": seconds,
        },
    )
    if align_to is not None:
        previous = load_checkpoint(align_to)
        rotation = fit_output_rotation(result.model, data.item_index.item_ids, previous)
        if rotation is not None:
            stats.extra.update(aligned_to=previous.checkpoint_id, output_rotation=rotation.tolist())
        log.info("student: served vectors %s %s's basis", "in" if rotation is not None else "NOT in", previous.path)
    features = getattr(data, "item_features", None)
    ckpt_id = save_checkpoint(out, result.model, data.item_index, stats, features.provenance if features else None)
    if decision is not None:
        log.info("student guard: %s", decision.describe())
    if result.ranks_by_popularity:
        why = decision.reason if decision is not None else "no trained variant passed the guard"
        log.warning("%s: the checkpoint ranks by popularity: %s", cfg.name, why)
    return {
        "checkpoint_id": ckpt_id,
        "out": str(out),
        "variant": variant,
        "guard": guard,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "best_valid": result.best_valid,
        "popularity_valid": result.popularity_valid,
        "ranks_by_popularity": result.ranks_by_popularity,
        "train_seconds": seconds,
        "users": seen.users,
        "users_with_profile": seen.users_with_profile,
    }


def item_content(table: pd.DataFrame) -> ItemContent:
    """`ItemContent` of an item table; semantic-ID code counts per level are the largest code + 1."""
    levels = sorted(int(c.rsplit("_", 1)[1]) for c in table.columns if c.startswith("item_sid_") and c[9:].isdigit())
    if levels != list(range(len(levels))):
        raise ValueError(f"item_sid_* columns must be item_sid_0..item_sid_L-1, got levels {levels}")
    sizes = tuple(int(table[f"item_sid_{level}"].fillna(-1).max()) + 1 for level in levels)
    if any(size < 1 for size in sizes):
        raise ValueError("an item_sid_* column holds no code")
    return ItemContent(table.assign(item_id=table["item_id"].astype(str)), sizes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m profile_features.student.train", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=None, help="student YAML (defaults when omitted)")
    ap.add_argument("--interactions", required=True)
    ap.add_argument("--profiles", default=None)
    ap.add_argument("--items", default=None, help="item content: item_id, item_text_embedding, item_sid_*")
    ap.add_argument("--out", required=True, help="checkpoint directory (replaced atomically)")
    ap.add_argument(
        "--validate", action="store_true", help="the deployment guard: validate after a cutoff, pick the variant"
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    add_verbosity_arguments(ap)
    args = ap.parse_args(argv)
    configure_logging(verbosity_level(args.verbose, args.quiet), args.verbose)  # epochs go to stderr

    cfg = load_student_config(args.config, args.overrides)
    interactions = read_table(args.interactions)
    profiles = read_table(args.profiles) if args.profiles else None
    content = item_content(read_table(args.items)) if args.items else None
    result = train_from_frames(cfg, interactions, profiles, args.out, validate=args.validate, content=content)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
