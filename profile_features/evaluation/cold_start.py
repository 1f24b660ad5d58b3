"""The cold-start slice: users whose history before the split holds few interactions.

Two ways to get such users, and the report says which one made each figure:
- natural: test users with 1..max_history interactions before the test cutoff
  (common on catalogues with many new users; on ml-100k almost none, because
  every user rates 20+ movies, mostly in one session);
- truncated: test users with a longer history get it cut to its first
  `max_history` interactions before the cutoff, in a separate pipeline run, so the
  batch jobs, the student and the ranker see them exactly as they would see a
  user who has only just arrived. Their interactions after the cutoff (the
  targets) are untouched.
Users with no interaction at all before the cutoff are not in the slice: no
profile or student vector can exist for them, so the semantic columns are null
by construction; the report counts them separately.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

__all__ = ["active_users", "history_counts", "natural_cold_users", "truncate_histories"]


def history_counts(interactions: pd.DataFrame, users, cutoff: datetime) -> pd.Series:
    """Interactions before `cutoff` per user of `users` (0 for users without any)."""
    before = interactions[interactions.timestamp < pd.Timestamp(cutoff)]
    return before.groupby("user_id").size().reindex(pd.Index(sorted(set(users)), name="user_id"), fill_value=0)


def active_users(interactions: pd.DataFrame, start: datetime, end: datetime) -> list[str]:
    """Users with an interaction in [start, end)."""
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))
    ]
    return sorted(window.user_id.unique())


def natural_cold_users(interactions: pd.DataFrame, users, cutoff: datetime, max_history: int = 5) -> list[str]:
    """Users of `users` with 1..max_history interactions before `cutoff`."""
    counts = history_counts(interactions, users, cutoff)
    return sorted(counts[(counts >= 1) & (counts <= max_history)].index)


def truncate_histories(interactions: pd.DataFrame, users, cutoff: datetime, keep: int = 5) -> pd.DataFrame:
    """`interactions` with each of `users`' interactions before `cutoff` cut to the first `keep`
    (by time, then input order); everything else, including all later interactions, is kept."""
    users, interactions = set(users), interactions.reset_index(drop=True)
    order = interactions.assign(_row=range(len(interactions))).sort_values(
        ["user_id", "timestamp", "_row"], kind="stable"
    )
    before = order.timestamp < pd.Timestamp(cutoff)
    rank = order[before].groupby("user_id").cumcount()
    drop = rank[(rank >= keep) & order.loc[rank.index, "user_id"].isin(users)].index
    return interactions.drop(index=drop)
