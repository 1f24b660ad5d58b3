"""Ranking metrics for one user's list, and their means over users.

Conventions (the same for every ranker in the report):
- A list is scored by the model; ties in score keep input order (stable sort).
- Relevance is binary or graded; NDCG uses gain 2^rel - 1 and log2 discounts.
- Recall@k divides by the user's number of relevant items; HR@k is 1 when any
  relevant item is in the top k; MRR is 1 / rank of the first relevant item.
- AUC is per user (probability that a relevant item outranks an irrelevant one,
  ties count half), averaged over users that have both kinds: the "GAUC" usual in
  recommendation, since a global AUC mostly rewards ranking users, not items.
Users without any relevant item are skipped (no metric is defined for them).

`ndcg_of_ranks` is the one NDCG of a single held-out target from its 0-based rank, shared by the
evaluation and the student's training and guard (torch-free, so the plugin can import it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "ndcg_at_k",
    "ndcg_of_ranks",
    "recall_at_k",
    "hit_rate_at_k",
    "reciprocal_rank",
    "auc",
    "list_metrics",
    "per_user_metrics",
    "mean_metrics",
]

METRICS = ["ndcg@10", "recall@10", "hr@10", "mrr", "auc"]  # the names list_metrics uses at k=10


def _ranked(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.asarray(labels, dtype=float)[np.argsort(-np.asarray(scores, dtype=float), kind="stable")]


def ndcg_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """NDCG@k of one list with graded labels."""
    labels = np.asarray(labels, dtype=float)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = (2.0 ** _ranked(labels, scores)[:k] - 1) @ discounts[: min(k, len(labels))]
    ideal = (2.0 ** np.sort(labels)[::-1][:k] - 1) @ discounts[: min(k, len(labels))]
    return float(gains / ideal) if ideal > 0 else 0.0


def ndcg_of_ranks(ranks, k: int = 10) -> np.ndarray:
    """NDCG@k of one relevant target per row from its 0-based rank (fractional for ties): 1 / log2(rank + 2)
    inside the top k, else 0 (the ideal list puts the target first, so the ideal DCG is 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def recall_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    relevant = (np.asarray(labels) > 0).sum()
    return float((_ranked(labels, scores)[:k] > 0).sum() / relevant) if relevant else 0.0


def hit_rate_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    return float((_ranked(labels, scores)[:k] > 0).any())


def reciprocal_rank(labels: np.ndarray, scores: np.ndarray) -> float:
    hits = np.flatnonzero(_ranked(labels, scores) > 0)
    return float(1.0 / (hits[0] + 1)) if len(hits) else 0.0


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a relevant item > score of an irrelevant one), ties half; NaN without both kinds."""
    labels, scores = np.asarray(labels) > 0, np.asarray(scores, dtype=float)
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()  # 1-based, ties averaged
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def list_metrics(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """NDCG@k, Recall@k, HR@k, MRR and AUC of one list."""
    return {
        f"ndcg@{k}": ndcg_at_k(labels, scores, k),
        f"recall@{k}": recall_at_k(labels, scores, k),
        f"hr@{k}": hit_rate_at_k(labels, scores, k),
        "mrr": reciprocal_rank(labels, scores),
        "auc": auc(labels, scores),
    }


def per_user_metrics(
    frame: pd.DataFrame, score_column: str, users=None, k: int = 10, group: str = "user_id", label: str = "label"
) -> pd.DataFrame:
    """One row of metrics per group with a relevant item (optionally only `users`), indexed by group."""
    if users is not None:
        frame = frame[frame[group].isin(set(users))]
    rows = {
        key: list_metrics(g[label].to_numpy(), g[score_column].to_numpy(), k)
        for key, g in frame.groupby(group, sort=True)
        if g[label].max() > 0
    }
    columns = list(list_metrics(np.ones(1), np.ones(1), k))
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis(group)


def mean_metrics(
    frame: pd.DataFrame, score_column: str, users=None, k: int = 10, group: str = "user_id", label: str = "label"
) -> dict[str, float]:
    """Mean of each metric over the groups with a relevant item (optionally only `users`),
    plus `users`, the number of groups averaged. AUC averages the groups that have both kinds."""
    per_user = per_user_metrics(frame, score_column, users, k, group, label)
    if per_user.empty:
        return {**{m: float("nan") for m in per_user.columns}, "users": 0}
    means = per_user.mean()  # skips NaN (AUC of users without negatives)
    return {**{m: float(v) for m, v in means.items()}, "users": len(per_user)}
