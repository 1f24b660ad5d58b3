"""Labelled candidate lists for ranker training and evaluation.

Candidate lists per user: the items the user interacted with inside a time window
(positives) plus negatives drawn by popularity before the window, the way a
retrieval stage would propose them (uniform negatives make popularity look
better than it is).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

__all__ = ["candidate_rows"]


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
        item_ids: the catalogue, in any order (sorted here, so the same rng draws the same
            negatives whatever order the items table was read in).
        negatives: negatives per user, drawn by popularity before `start`, never an
            item the user interacted with before `end`.

    Returns:
        user_id, item_id, event_timestamp (the user's first interaction in the
        window, shared by the whole group so all candidates see one feature
        snapshot), label (1/0).
    """
    item_ids = np.sort(np.unique(np.asarray(item_ids)))
    before = interactions[interactions.timestamp < pd.Timestamp(start)]
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))
    ]
    popularity = before.item_id.value_counts().reindex(item_ids, fill_value=0).to_numpy() + 1.0
    probs = popularity / popularity.sum()
    seen_until_end = interactions[interactions.timestamp < pd.Timestamp(end)].groupby("user_id").item_id.agg(set)
    rows = []
    for user_id, group in window.groupby("user_id", sort=True):
        at = group.timestamp.min()
        positives = sorted(set(group.item_id))
        excluded = seen_until_end.get(user_id, set())
        draws = rng.choice(
            len(item_ids), size=min(len(item_ids), 4 * negatives + len(excluded)), replace=False, p=probs
        )
        chosen = [item_ids[i] for i in draws if item_ids[i] not in excluded][:negatives]
        rows += [(user_id, item, at, 1) for item in positives] + [(user_id, item, at, 0) for item in chosen]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_timestamp", "label"])
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    return frame
