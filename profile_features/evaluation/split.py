"""Who trains, who validates and who is tested, on a temporal split of the user's data.

Two snapshots are cut at whole days (quantiles of interaction time): the training
snapshot `train_cutoff` and the test snapshot `test_cutoff`. Rankers learn from users
active in [train_cutoff, test_cutoff) with the training snapshot's features, and are
tested on users active after `test_cutoff` with the test snapshot's features, as a
ranker retrained daily would be.

- LightGBM validates every training-window user out of fold (gbdt.py); its column set is
  chosen on them, with `train_slices` (returning, new and cold users of the window) as the
  populations that must not be harmed.
- The two-tower's validation users are the last `valid_fraction` of the training-window
  users by the time they first show up in the window: split by user (no user is in both) and in time
  order (validation users come after the users the model is fitted on). The cut is made
  separately among returning users (a history before `train_cutoff`) and new ones: the
  last users to arrive are mostly new, and a validation set of new users would choose
  columns for a population the "all" test slice does not contain.
- Test users are split by what the plugin can know about them at the test cutoff:
  "all" holds the users with at least one interaction before it (a profile can exist);
  "new" those without (only item-side columns apply); "cold" those with 1..k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from profile_features.evaluation.cold_start import active_users, history_counts

__all__ = ["EvaluationSplit", "last_to_arrive", "returning_users", "validation_users", "build_split", "slice_sizes"]


@dataclass(frozen=True)
class EvaluationSplit:
    """The populations of one evaluation run (user ids, sorted)."""

    train_cutoff: datetime
    test_cutoff: datetime
    end: datetime
    fit_users: list[str]
    valid_users: list[str]
    test_users: list[str]  # every user active after the test cutoff
    slices: dict[str, list[str]] = field(default_factory=dict)  # slice name -> test users in it
    valid_slices: dict[str, list[str]] = field(default_factory=dict)  # "all" (returning) and "new" validation users
    train_slices: dict[str, list[str]] = field(default_factory=dict)  # returning / new / cold training-window users
    history_counts: pd.Series | None = None  # test user -> interactions before the test cutoff


def last_to_arrive(interactions: pd.DataFrame, start: datetime, end: datetime, fraction: float) -> list[str]:
    """The last `fraction` of users active in [start, end), ordered by their first interaction there
    (user id breaks ties); at least one user when there are two or more, never all."""
    ts = interactions.timestamp
    window = interactions[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    first = window.groupby("user_id").timestamp.min().reset_index().sort_values(["timestamp", "user_id"])
    count = int(round(len(first) * fraction))
    if len(first) >= 2:
        count = min(max(count, 1), len(first) - 1)
    else:
        count = 0
    return sorted(first.user_id.iloc[len(first) - count :]) if count else []


def returning_users(interactions: pd.DataFrame, before: datetime) -> set[str]:
    """Users with at least one interaction before `before`."""
    return set(interactions.user_id[interactions.timestamp < pd.Timestamp(before)])


def validation_users(interactions: pd.DataFrame, start: datetime, end: datetime, fraction: float) -> list[str]:
    """`last_to_arrive` taken separately among returning users (a history before `start`) and new ones,
    so validation has the fitted users' mix of both."""
    returning = interactions.user_id.isin(returning_users(interactions, start))
    return sorted(
        last_to_arrive(interactions[returning], start, end, fraction)
        + last_to_arrive(interactions[~returning], start, end, fraction)
    )


def build_split(
    interactions: pd.DataFrame,
    cutoffs: tuple[datetime, datetime],
    end: datetime,
    valid_fraction: float = 0.2,
    cold_max_history: int = 5,
) -> EvaluationSplit:
    """Populations for `cutoffs` = (train_cutoff, test_cutoff) and the end of the test window."""
    train_cutoff, test_cutoff = cutoffs
    train_users = active_users(interactions, train_cutoff, test_cutoff)
    valid = validation_users(interactions, train_cutoff, test_cutoff, valid_fraction)
    valid_set = set(valid)
    returning = returning_users(interactions, train_cutoff)
    test_users = active_users(interactions, test_cutoff, end)
    counts = history_counts(interactions, test_users, test_cutoff)
    train_counts = history_counts(interactions, train_users, train_cutoff)
    slices = {
        "all": sorted(counts[counts >= 1].index),
        "cold": sorted(counts[(counts >= 1) & (counts <= cold_max_history)].index),
        "new": sorted(counts[counts == 0].index),
    }
    return EvaluationSplit(
        train_cutoff,
        test_cutoff,
        end,
        [u for u in train_users if u not in valid_set],
        valid,
        test_users,
        slices,
        {"all": [u for u in valid if u in returning], "new": [u for u in valid if u not in returning]},
        {
            "returning": sorted(train_counts[train_counts >= 1].index),
            "new": sorted(train_counts[train_counts == 0].index),
            "cold": sorted(train_counts[(train_counts >= 1) & (train_counts <= cold_max_history)].index),
        },
        counts,
    )


def slice_sizes(split: EvaluationSplit) -> dict[str, int]:
    return {name: len(users) for name, users in split.slices.items()}
