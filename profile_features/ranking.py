"""Ranking training sets and metrics shared by the ranker examples.

Candidate lists per user: the items the user interacted with inside a time window
(positives) plus negatives drawn by popularity before the window, the way a
retrieval stage would propose them (uniform negatives make popularity look
better than it is).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

__all__ = ["candidate_rows", "ndcg_at_k", "mean_ndcg_at_k"]


def candidate_rows(
    interactions: pd.DataFrame,
    item_ids: np.ndarray,
    start: datetime,
    end: datetime,
    negatives: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One labelled row per (user, candidate item) for users active in [start, end).

    Args:
        interactions: user_id, item_id, timestamp (UTC).
        item_ids: the catalogue.
        negatives: negatives per user, drawn by popularity before `start`, never an
            item the user interacted with before `end`.

    Returns:
        user_id, item_id, event_timestamp (the user's first interaction in the
        window, shared by the whole group so all candidates see one feature
        snapshot), label (1/0).
    """
    before = interactions[interactions.timestamp < pd.Timestamp(start)]
    window = interactions[(interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))]
    popularity = before.item_id.value_counts().reindex(item_ids, fill_value=0).to_numpy() + 1.0
    probs = popularity / popularity.sum()
    seen_until_end = interactions[interactions.timestamp < pd.Timestamp(end)].groupby("user_id").item_id.agg(set)
    rows = []
    for user_id, group in window.groupby("user_id", sort=True):
        at = group.timestamp.min()
        positives = sorted(set(group.item_id))
        excluded = seen_until_end.get(user_id, set())
        draws = rng.choice(len(item_ids), size=min(len(item_ids), 4 * negatives + len(excluded)), replace=False, p=probs)
        chosen = [item_ids[i] for i in draws if item_ids[i] not in excluded][:negatives]
        rows += [(user_id, item, at, 1) for item in positives] + [(user_id, item, at, 0) for item in chosen]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_timestamp", "label"])
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    return frame


def ndcg_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """NDCG@k of one list with graded labels; ties in score keep input order."""
    order = np.argsort(-scores, kind="stable")[:k]
    gains = (2.0 ** labels[order] - 1) / np.log2(np.arange(2, len(order) + 2))
    ideal = np.sort(labels)[::-1][:k]
    best = ((2.0 ** ideal - 1) / np.log2(np.arange(2, len(ideal) + 2))).sum()
    return float(gains.sum() / best) if best > 0 else 0.0


def mean_ndcg_at_k(frame: pd.DataFrame, score_column: str, k: int = 10, group: str = "user_id") -> float:
    """Mean NDCG@k over groups that have at least one positive."""
    values = [
        ndcg_at_k(g.label.to_numpy(dtype=float), g[score_column].to_numpy(dtype=float), k)
        for _, g in frame.groupby(group, sort=False)
        if g.label.max() > 0
    ]
    return float(np.mean(values)) if values else float("nan")
