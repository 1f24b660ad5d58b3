"""The student's own next-item quality on the evaluation's held-out window, against its baselines.

Every model ranks all items for each test user from the history the histories job cut at
the test cutoff; the target is the user's first item after the cutoff. Full ranking,
seen items not removed, as in benchmarks/student_quality.py. The models:
- "most popular" (counts before the cutoff): the reference every sequential model must beat;
- "student": the pipeline's checkpoint (seed 0), whatever its deployment guard (student/guard.py)
  shipped, and that variant retrained on more seeds (the popularity prior when that shipped), so
  what is measured is what the pipeline ships;
- "plain SASRec": the same config with IDs only (no distillation, no item content, no neighbour
  term, no crops), same schedule and seeds, the guard off (plain SASRec itself, never a fallback),
all trained on the interactions before the cutoff, epochs picked on the guard's validation (the items
after a validation cutoff inside the training period).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.catalogue import HISTORIES, USER_PROFILE_EMBEDDINGS, Snapshot, Table
from profile_features.catalogue import STUDENT as STUDENT_CHECKPOINT
from profile_features.metrics import ndcg_of_ranks

__all__ = [
    "MOST_POPULAR",
    "STUDENT",
    "PLAIN",
    "train_comparison_students",
    "student_ranks",
    "ranks_per_user",
    "evaluate_student",
]

MOST_POPULAR, STUDENT, PLAIN = "most popular", "student", "plain SASRec"


def _next_items(interactions: pd.DataFrame, start: datetime, end: datetime) -> pd.Series:
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))
    ]
    return window.sort_values("timestamp", kind="stable").groupby("user_id").item_id.first()


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
    retrain that variant (its saved config, epochs picked on the same validation, then refitted): the
    seeds measure the shipped model's spread, and the guard's search is not repeated per seed. When the
    guard shipped the popularity prior, every seed is that prior. The runs go to `out_dir`.
    """
    from profile_features.item_content import read_item_content
    from student.config import StudentConfig, load_student_config
    from student.guard import POPULARITY
    from student.scoring import load_student
    from student.train import train_from_frames

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

    for variant in (STUDENT, PLAIN):
        for seed in seeds:
            if variant == STUDENT and (seed == 0 or shipped.variant == POPULARITY):
                checkpoints[variant].append(pipeline_checkpoint)
                continue
            cfg = config(variant, seed)
            out = Path(out_dir) / f"{cfg.name}-seed{seed}"
            result = train_from_frames(
                cfg, before, None if variant == PLAIN else profiles, out, validate=True, content=content
            )
            label = shipped.variant if variant == STUDENT else "unguarded"
            log(
                f"  {variant} seed {seed}: {label}, best epoch {result['best_epoch']}, valid NDCG@10 "
                f"{result['best_valid']['ndcg@10']:.4f} (most popular {result['popularity_valid']['ndcg@10']:.4f})"
            )
            checkpoints[variant].append(out)
    if shipped.variant == POPULARITY:
        log(f"  {STUDENT}: the pipeline's guard shipped the popularity prior; every seed is that prior")
    return checkpoints


def _ranks(student, histories: pd.DataFrame, targets: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    from student.evaluation import target_ranks

    index = student.item_index.to_index
    inputs = [student.item_index.encode(items)[-student.config.body.max_len :] for items in histories.item_ids]
    target_ids = [index.get(str(targets[user])) for user in histories.user_id]
    keep = [i for i, (seq, target) in enumerate(zip(inputs, target_ids)) if seq and target is not None]
    ranks = target_ranks(student.model, [inputs[i] for i in keep], [target_ids[i] for i in keep])
    return histories.user_id.to_numpy()[keep], ranks


def _popular_ranks(
    student, interactions: pd.DataFrame, cutoff: datetime, users: np.ndarray, targets: pd.Series
) -> np.ndarray:
    from student.evaluation import ranks_from_scores

    popularity = interactions[interactions.timestamp < pd.Timestamp(cutoff)].item_id.astype(str).value_counts()
    counts = popularity.reindex(student.item_index.item_ids, fill_value=0).to_numpy()
    index = student.item_index.to_index
    target_ids = np.array([index[str(targets[u])] for u in users], dtype=np.int64)
    return ranks_from_scores(np.broadcast_to(counts, (len(users), len(counts))), target_ids)


def student_ranks(
    data_dir: Path,
    interactions: pd.DataFrame,
    test_cutoff: datetime,
    end: datetime,
    checkpoints: dict[str, list[str | Path]] | None = None,
) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """The users ranked and, per variant ("most popular" first, then each checkpoint variant), one array of
    0-based target ranks per seed (most popular, deterministic, repeated for every seed).

    Users without a history at the cutoff, or whose target item the checkpoints do not know, are left out.
    """
    from student.scoring import load_student

    snapshot = Snapshot(str(data_dir), test_cutoff)
    checkpoints = checkpoints or {STUDENT: [snapshot.path(STUDENT_CHECKPOINT)]}
    histories = _read(snapshot, HISTORIES, ["user_id", "item_ids"])
    targets = _next_items(interactions, test_cutoff, end)
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
    """variant, seed, user_id, value: each user's NDCG@k of the target rank (the paired statistics read these)."""
    frames = []
    for variant, per_seed in ranks.items():
        for seed, variant_ranks in enumerate(per_seed):
            ndcg = ndcg_of_ranks(variant_ranks, k)
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
) -> pd.DataFrame:
    """Long-format metrics (model "student"; variants "most popular", then each checkpoint variant).

    Args:
        checkpoints: variant -> one checkpoint per seed (default: the pipeline's student alone).
        slices: name -> test users (default "all": every test user with a history).
        ranked: `student_ranks`' result when the caller has it already.

    Users without a history at the cutoff, or whose target item the checkpoints do not know,
    are left out (`users` counts who is in).
    """
    from student.evaluation import metrics_from_ranks

    users, ranks = ranked or student_ranks(data_dir, interactions, test_cutoff, end, checkpoints)
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
