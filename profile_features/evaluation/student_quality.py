"""The student's own next-item quality on the evaluation's held-out window.

The pipeline's student checkpoint of the test snapshot ranks all items for each
test user from the history the histories job cut at the test cutoff; the target is
the user's first item after the cutoff (the next item). Full ranking, seen items
not removed, as in benchmarks/student_quality.py; "most popular" (counts before the
cutoff) is the reference every sequential model must beat.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["evaluate_student"]


def _next_items(interactions: pd.DataFrame, start: datetime, end: datetime) -> pd.Series:
    window = interactions[(interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))]
    return window.sort_values("timestamp", kind="stable").groupby("user_id").item_id.first()


def _metrics(ranks: np.ndarray) -> dict[str, float]:
    from student.evaluation import metrics_from_ranks

    return {k: v for k, v in metrics_from_ranks(ranks).as_dict().items() if k != "users"}


def evaluate_student(data_dir: Path, interactions: pd.DataFrame, test_cutoff: datetime, end: datetime,
                     cold_users: Collection[str] | None = None) -> pd.DataFrame:
    """Long-format metrics (model "student", variants "most popular", the baseline, and "student checkpoint").

    Users without a history at the cutoff, or whose target item the checkpoint does
    not know, are left out and counted in `users`' complement (the report shows users).
    """
    from student.evaluation import target_ranks
    from student.scoring import load_student

    run_date = pd.Timestamp(test_cutoff).date().isoformat()
    histories = pd.read_parquet(Path(data_dir) / "histories" / f"run_date={run_date}", columns=["user_id", "item_ids"])
    student = load_student(Path(data_dir) / "student" / f"run_date={run_date}")
    index = student.item_index.to_index
    targets = _next_items(interactions, test_cutoff, end)
    rows = histories[histories.user_id.isin(targets.index)]
    inputs = [student.item_index.encode(items)[-student.config.body.max_len:] for items in rows.item_ids]
    target_ids = [index.get(str(targets[user])) for user in rows.user_id]
    keep = [i for i, (seq, target) in enumerate(zip(inputs, target_ids)) if seq and target is not None]
    users = rows.user_id.to_numpy()[keep]
    student_ranks = target_ranks(student.model, [inputs[i] for i in keep], [target_ids[i] for i in keep])

    popularity = interactions[interactions.timestamp < pd.Timestamp(test_cutoff)].item_id.astype(str).value_counts()
    counts = popularity.reindex(student.item_index.item_ids, fill_value=0).to_numpy()
    target_counts = counts[np.array([target_ids[i] for i in keep], dtype=int) - 1]
    popular_ranks = (counts[None, :] > target_counts[:, None]).sum(1) + ((counts[None, :] == target_counts[:, None]).sum(1) - 1) / 2

    records = []
    slices = {"all": np.ones(len(users), bool)}
    if cold_users is not None:
        slices["cold"] = np.isin(users, list(cold_users))
    for variant, ranks in (("most popular", popular_ranks), ("student checkpoint", student_ranks)):
        for slice_name, mask in slices.items():
            for metric, value in _metrics(ranks[mask]).items():
                records.append({"model": "student", "variant": variant, "seed": 0, "slice": slice_name,
                                "metric": metric, "value": value, "users": int(mask.sum())})
    return pd.DataFrame(records)
