"""The student's own next-item quality on the evaluation's held-out window, against its baselines.

Every model ranks all items for each test user from the history the histories job cut at
the test cutoff; the targets are the user's first `targets_per_user` items after the cutoff (the
deployment guard's `guard.targets_per_user`, 5 by default: the guard validates on the same question),
each ranked from that one history, a user's NDCG@10 the mean over their targets. Full ranking, seen
items not removed, as in benchmarks/student_quality.py. The models:
- "most popular" (counts before the cutoff): the reference every sequential model must beat;
- "student": the pipeline's checkpoint (seed 0), whatever its deployment guard (student/guard.py)
  shipped, and that variant retrained on more seeds (the popularity prior when that shipped), so
  what is measured is what the pipeline ships;
- "plain SASRec": the same config with IDs only (no distillation, no item content, no neighbour
  term, no crops), same schedule and seeds, the guard off (plain SASRec itself, never a fallback),
all trained on the interactions before the cutoff, epochs picked on the guard's validation (the items
after a validation cutoff inside the training period). The pipeline's guard validated both at this
snapshot, so each seed repeats that validated run on every training interaction (its epochs and
distillation switch, and for the student its trending prior) rather than validating again: what the guard
would ship for that variant, without a second validation run (a checkpoint without that record
validates anew).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.catalogue import HISTORIES, USER_PROFILE_EMBEDDINGS, Snapshot, Table
from profile_features.catalogue import STUDENT as STUDENT_CHECKPOINT

__all__ = [
    "MOST_POPULAR",
    "STUDENT",
    "PLAIN",
    "train_comparison_students",
    "next_items",
    "student_ranks",
    "ranks_per_user",
    "evaluate_student",
]

MOST_POPULAR, STUDENT, PLAIN = "most popular", "student", "plain SASRec"


def next_items(interactions: pd.DataFrame, start: datetime, end: datetime, count: int = 1) -> pd.Series:
    """user_id -> the list of the user's first `count` item ids in [start, end), oldest first."""
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))
    ]
    first = window.sort_values("timestamp", kind="stable").groupby("user_id", sort=True).head(count)
    return first.groupby("user_id", sort=True).item_id.agg(list)


def _read(snapshot: Snapshot, table: Table, columns: list[str]) -> pd.DataFrame:
    from profile_features.freshness.runs import read_run

    return read_run(snapshot, table, snapshot.run_date, columns)


def train_comparison_students(
    data_dir: Path,
    interactions: pd.DataFrame,
    test_cutoff: datetime,
    student_config,
    overrides: Sequence[str],
    seeds: Sequence[int],
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> dict[str, list[str | Path]]:
    """Checkpoints per variant and seed, trained as the pipeline trains its student at `test_cutoff`.

    Seed 0 of the student is the pipeline's own checkpoint, whatever its guard shipped. The other seeds
    retrain that variant (its saved config, for the epochs the guard validated, its trending prior added):
    the seeds measure the shipped model's spread, and the guard's search is not repeated per seed. When
    the guard shipped the popularity prior, every seed is that prior. Plain SASRec repeats the guard's
    plain candidate (its validated epochs, no trending prior); without a recorded candidate a seed
    validates itself. The runs go to `out_dir`.
    """
    from profile_features.item_content import read_item_content
    from profile_features.student.config import StudentConfig, load_student_config
    from profile_features.student.guard import PLAIN as PLAIN_VARIANT
    from profile_features.student.guard import POPULARITY, Replay
    from profile_features.student.scoring import load_student
    from profile_features.student.train import train_from_frames

    snapshot = Snapshot(str(data_dir), test_cutoff)
    before = interactions[interactions.timestamp < pd.Timestamp(test_cutoff)][["user_id", "item_id", "timestamp"]]
    profiles = _read(snapshot, USER_PROFILE_EMBEDDINGS, ["user_id", "profile_embedding"])
    pipeline_checkpoint = snapshot.path(STUDENT_CHECKPOINT)
    shipped = load_student(pipeline_checkpoint)
    checkpoints: dict[str, list[str | Path]] = {STUDENT: [], PLAIN: []}
    plain = [
        "distill.enabled=false",
        "items.id=true",
        "items.text=false",
        "items.sid=false",
        "neighbours.enabled=false",
        "train.crop_prob=0",
        "guard.enabled=false",
        "guard.prior_weights=[]",  # plain SASRec as published: no trending prior either
        "name=plain",
    ]
    # Both read the student's item content, so both index the same items (plain ranks items it never
    # saw as average ones: it cannot tell them apart).
    content = read_item_content(
        snapshot.data_dir, snapshot.run_date, load_student_config(student_config, list(overrides)).content_views
    )

    def config(variant: str, seed: int) -> StudentConfig:
        if variant == PLAIN:
            return load_student_config(student_config, [*overrides, *plain, f"train.seed={seed}"])
        raw = shipped.config.model_dump()
        raw["train"]["seed"], raw["guard"]["enabled"], raw["name"] = seed, False, f"student-{shipped.variant}"
        return StudentConfig.model_validate(raw)

    guard = (shipped.stats.extra or {}).get("guard")
    for variant in (STUDENT, PLAIN):
        student = variant == STUDENT
        replay = Replay.recorded(guard, shipped.variant if student else PLAIN_VARIANT, with_prior=student)
        for seed in seeds:
            if student and (seed == 0 or shipped.variant == POPULARITY):
                checkpoints[variant].append(pipeline_checkpoint)
                continue
            cfg = config(variant, seed)
            out = Path(out_dir) / f"{cfg.name}-seed{seed}"
            result = train_from_frames(
                cfg, before, profiles if student else None, out, validate=replay is None, content=content, replay=replay
            )
            label = shipped.variant if student else "unguarded"
            if replay is not None:
                log(f"  {variant} seed {seed}: {label}, the guard's {replay.epochs} validated epochs repeated")
            else:
                valid, popular = result["best_valid"]["ndcg@10"], result["popularity_valid"]["ndcg@10"]
                log(
                    f"  {variant} seed {seed}: {label}, best epoch {result['best_epoch']}, valid NDCG@10 "
                    f"{valid:.4f} (most popular {popular:.4f})"
                )
            checkpoints[variant].append(out)
    if shipped.variant == POPULARITY:
        log(f"  {STUDENT}: the pipeline's guard shipped the popularity prior; every seed is that prior")
    return checkpoints


def _known(student, items: list) -> list[int]:
    """The item indices of `items` the checkpoint knows (an item it never saw is no one's target: no model
    could rank it)."""
    index = student.item_index.to_index
    return [index[str(item)] for item in items if str(item) in index]


def _ranks(student, histories: pd.DataFrame, targets: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The users of `histories` with a history and a known target, and their [users, targets] ranks."""
    from profile_features.student.evaluation import targets_ranks

    max_len = student.config.body.max_len
    rows, inputs, target_ids = [], [], []
    for row, (user, items) in enumerate(zip(histories.user_id, histories.item_ids)):
        known = _known(student, targets[user])
        if len(items) and known:
            rows.append(row)
            inputs.append(student.item_index.encode(items)[-max_len:])
            target_ids.append(known)
    return histories.user_id.to_numpy()[rows], targets_ranks(student.model, inputs, target_ids)


def _popular_ranks(
    student, interactions: pd.DataFrame, cutoff: datetime, users: np.ndarray, targets: pd.Series
) -> np.ndarray:
    """[users, targets] ranks by the interaction counts before `cutoff` (every user has a known target)."""
    from profile_features.student.evaluation import pad_targets, ranks_from_scores

    popularity = interactions[interactions.timestamp < pd.Timestamp(cutoff)].item_id.astype(str).value_counts()
    counts = popularity.reindex(student.item_index.item_ids, fill_value=0).to_numpy()
    padded = pad_targets([_known(student, targets[user]) for user in users])
    out = np.full(padded.shape, np.nan)
    for column in range(padded.shape[1]):
        has = padded[:, column] > 0
        scores = np.broadcast_to(counts, (int(has.sum()), len(counts)))
        out[has, column] = ranks_from_scores(scores, padded[has, column])
    return out


def student_ranks(
    data_dir: Path,
    interactions: pd.DataFrame,
    test_cutoff: datetime,
    end: datetime,
    checkpoints: dict[str, list[str | Path]] | None = None,
    targets_per_user: int = 1,
) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """The users ranked and, per variant ("most popular" first, then each checkpoint variant), one [users,
    targets_per_user] array of 0-based target ranks per seed (NaN where a user has fewer targets; most
    popular, deterministic, repeated for every seed).

    Users without a history at the cutoff, or none of whose target items the checkpoints know, are left out.
    """
    from profile_features.student.scoring import load_student

    snapshot = Snapshot(str(data_dir), test_cutoff)
    checkpoints = checkpoints or {STUDENT: [snapshot.path(STUDENT_CHECKPOINT)]}
    histories = _read(snapshot, HISTORIES, ["user_id", "item_ids"])
    targets = next_items(interactions, test_cutoff, end, targets_per_user)
    histories = histories[histories.user_id.isin(targets.index)].reset_index(drop=True)
    ranks: dict[str, list[np.ndarray]] = {}
    users = None
    for variant, paths in checkpoints.items():
        for path in paths:
            student = load_student(path)
            these_users, these_ranks = _ranks(student, histories, targets)
            if users is None:
                users = these_users
                ranks[MOST_POPULAR] = [_popular_ranks(student, interactions, test_cutoff, users, targets)]
            elif not np.array_equal(users, these_users):
                raise ValueError(
                    f"{path}: knows other items than the first checkpoint; compare students trained on "
                    "the same interactions"
                )
            ranks.setdefault(variant, []).append(these_ranks)
    seeds = max(len(r) for r in ranks.values())
    ranks[MOST_POPULAR] = ranks[MOST_POPULAR] * seeds  # deterministic: the same figure paired with every seed
    return users, ranks


def ranks_per_user(users: np.ndarray, ranks: dict[str, list[np.ndarray]], k: int = 10) -> pd.DataFrame:
    """variant, seed, user_id, value: each user's NDCG@k, the mean over their targets' ranks ([users] or
    [users, targets], NaN for no target), which the paired statistics read."""
    from profile_features.student.evaluation import per_user_metrics

    frames = []
    for variant, per_seed in ranks.items():
        for seed, variant_ranks in enumerate(per_seed):
            ndcg = per_user_metrics(variant_ranks, k)["ndcg@10"]
            frames.append(pd.DataFrame({"variant": variant, "seed": seed, "user_id": users, "value": ndcg}))
    return pd.concat(frames, ignore_index=True)


def evaluate_student(
    data_dir: Path,
    interactions: pd.DataFrame,
    test_cutoff: datetime,
    end: datetime,
    checkpoints: dict[str, list[str | Path]] | None = None,
    slices: dict[str, Collection[str]] | None = None,
    ranked: tuple[np.ndarray, dict[str, list[np.ndarray]]] | None = None,
    targets_per_user: int = 1,
) -> pd.DataFrame:
    """Long-format metrics (model "student"; variants "most popular", then each checkpoint variant).

    Args:
        checkpoints: variant -> one checkpoint per seed (default: the pipeline's student alone).
        slices: name -> test users (default "all": every test user with a history).
        ranked: `student_ranks`' result when the caller has it already.
        targets_per_user: each user's first items after the cutoff that are ranked (`student_ranks`).

    Users without a history at the cutoff, or whose target item the checkpoints do not know,
    are left out (`users` counts who is in).
    """
    from profile_features.student.evaluation import metrics_from_ranks

    users, ranks = ranked or student_ranks(data_dir, interactions, test_cutoff, end, checkpoints, targets_per_user)
    slices = slices or {"all": users}
    records = []
    for variant, per_seed in ranks.items():
        for seed, variant_ranks in enumerate(per_seed):
            for slice_name, members in slices.items():
                mask = np.isin(users, list(members))
                values = metrics_from_ranks(variant_ranks[mask]).as_dict()
                n = values.pop("users")
                if not n:  # no metric is defined for an empty slice
                    values = dict.fromkeys(values, float("nan"))
                records += [
                    {
                        "model": "student",
                        "variant": variant,
                        "seed": seed,
                        "slice": slice_name,
                        "metric": metric,
                        "value": value,
                        "users": n,
                    }
                    for metric, value in values.items()
                ]
    return pd.DataFrame(records)
