"""Which users' LLM profiles to regenerate first, within a budget.

LLM calls are the expensive part of the pipeline; after a new histories snapshot most
users' profiles are still good. The plan ranks the users of the snapshot in strict tiers
(a lower tier always comes first), and by a score within a tier:

  0. `missing_profile`: a history but no profile at all; they have nothing.
     Score: history length (more to describe).
  1. `fallback_profile`: the profile was written by the rule-based fallback
     (`rule_based_fallback`), not the LLM. Score: history length.
  2. `history_changed`: the current history hash differs from the hash the profile was
     written from. Score: unseen share x (1 + drift), where unseen share = interactions
     added since that history / current history length (in [0, 1]) and drift is the
     student's `profile_drift` (0 when unknown): a profile that missed most of the
     history and that the student also disagrees with goes first.
  3. `drift`: history unchanged, `profile_drift` >= `min_drift`. Score: drift. Regenerating
     from the same history helps only when the generator is not deterministic or has
     changed, so these come last.
Users with an unchanged history and no drift (or less than `min_drift`) are not candidates.
Ties: more interactions added, then user id.

"Interactions added" counts events of the current history newer than the last
interaction of the history the profile was written from (found by its hash in an earlier
histories run). When that run is gone it falls back to the length difference (at least
1) and `added_exact` is false. Histories are capped at `history.max_length`, so a count
reaches at most that.

Shape: `join_inputs` (one row per user), `score_candidates` (pure, per row: tier and score)
and `rank_plan` (the order). `plan_refresh` runs them in pandas; `spark.refresh_plan_job.build_refresh_plan` runs the
join and the scoring in Spark (`spark.refresh_plan_job`) so the driver holds only the budget.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features import storage
from profile_features.profiles.base import FALLBACK_GENERATOR

__all__ = [
    "FALLBACK_GENERATOR",
    "TIERS",
    "PLAN_COLUMNS",
    "interactions_added",
    "join_inputs",
    "score_candidates",
    "rank_plan",
    "plan_refresh",
    "budget_size",
    "select_budget",
    "write_plan",
    "check_refresh_list",
]

TIERS = ("missing_profile", "fallback_profile", "history_changed", "drift")
PLAN_COLUMNS = [
    "rank",
    "user_id",
    "reason",
    "tier",
    "score",
    "profile_drift",
    "history_changed",
    "interactions_added",
    "added_exact",
    "history_length",
    "history_hash",
    "profile_history_hash",
    "profile_generator",
]


def interactions_added(history_json: str, since) -> int:
    """Events of a history (HISTORIES.history_json) strictly after `since`."""
    since = pd.Timestamp(since)
    since = since.tz_localize("UTC") if since.tzinfo is None else since
    stamps = pd.to_datetime([e["timestamp"] for e in json.loads(history_json)], utc=True)
    return int((stamps > since).sum())


JOINED_COLUMNS = [
    "user_id",
    "history_hash",
    "history_length",
    "history_json",
    "profile_history_hash",
    "profile_history_length",
    "profile_generator",
    "profile_drift",
    "profile_last_interaction_at",
]


def _added(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(interactions added, exact?) for rows whose history changed."""
    added = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    exact = pd.Series(False, index=frame.index)
    changed = frame[frame["history_changed"]]
    last_seen = pd.to_datetime(changed["profile_last_interaction_at"], utc=True)
    for index, row in changed.iterrows():
        if pd.notna(last_seen[index]):
            added[index] = interactions_added(row["history_json"], last_seen[index])
            exact[index] = True
        else:
            known = row["profile_history_length"]
            gap = row["history_length"] - (0 if pd.isna(known) else int(known))
            added[index] = max(1, int(gap))
    return added, exact


def join_inputs(
    histories: pd.DataFrame,
    profiles: pd.DataFrame,
    student: pd.DataFrame | None = None,
    earlier_histories: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One JOINED_COLUMNS row per user of the snapshot (pandas; `spark.refresh_plan_job` joins the same in Spark)."""
    frame = histories[["user_id", "history_hash", "history_length", "history_json"]].drop_duplicates("user_id")
    known = profiles[["user_id", "history_hash", "history_length", "generator"]].drop_duplicates("user_id", keep="last")
    frame = frame.merge(
        known.rename(
            columns={
                "history_hash": "profile_history_hash",
                "history_length": "profile_history_length",
                "generator": "profile_generator",
            }
        ),
        on="user_id",
        how="left",
    )
    frame["profile_drift"] = np.nan
    if student is not None and not student.empty:
        drift = student.drop_duplicates("user_id").set_index("user_id")["profile_drift"]
        frame["profile_drift"] = frame["user_id"].map(drift).astype("float64")
    frame["profile_last_interaction_at"] = pd.NaT
    if earlier_histories is not None and not earlier_histories.empty:
        lookup = earlier_histories.drop_duplicates(["user_id", "history_hash"]).set_index(["user_id", "history_hash"])[
            "last_interaction_at"
        ]
        keys = pd.MultiIndex.from_arrays([frame["user_id"], frame["profile_history_hash"]])
        frame["profile_last_interaction_at"] = pd.to_datetime(lookup.reindex(keys).to_numpy(), utc=True)
    return frame[JOINED_COLUMNS]


def score_candidates(joined: pd.DataFrame, min_drift: float = 0.0) -> pd.DataFrame:
    """Tier and score each joined row (pure, row by row: any batch of users gives the same rows).

    Returns:
        the candidates (users with a tier) as PLAN_COLUMNS without `rank`, plus `_added` (the
        tie-break: interactions added, 0 when unknown).
    """
    frame = joined.copy()
    drift = frame["profile_drift"].astype("float64")
    frame["profile_drift"] = drift.where(np.isfinite(drift))
    missing = frame["profile_history_hash"].isna()
    fallback = ~missing & (frame["profile_generator"] == FALLBACK_GENERATOR)
    frame["history_changed"] = ~missing & (frame["profile_history_hash"] != frame["history_hash"])
    frame["interactions_added"], frame["added_exact"] = _added(frame)

    unseen = (frame["interactions_added"].astype("float64") / frame["history_length"].clip(lower=1)).clip(0, 1)
    tier = np.select(
        [missing, fallback, frame["history_changed"], frame["profile_drift"] >= min_drift], [0, 1, 2, 3], -1
    )
    score = np.select(
        [tier <= 1, tier == 2, tier == 3],
        [
            frame["history_length"].astype("float64"),
            unseen * (1 + frame["profile_drift"].fillna(0.0)),
            frame["profile_drift"],
        ],
        np.nan,
    )
    frame["tier"], frame["score"] = tier, score
    frame = frame[frame["tier"] >= 0].copy()
    frame["reason"] = np.asarray(TIERS, dtype=object)[frame["tier"].to_numpy()]  # object even when empty
    frame["_added"] = frame["interactions_added"].fillna(0).astype("int64")
    return frame[[c for c in PLAN_COLUMNS if c != "rank"] + ["_added"]]


PLAN_ORDER = (["tier", "score", "_added", "user_id"], [True, False, False, True])


def rank_plan(scored: pd.DataFrame) -> pd.DataFrame:
    """Order candidates (tier, then score, then interactions added, then user id) and number them from 1."""
    frame = scored.sort_values(PLAN_ORDER[0], ascending=PLAN_ORDER[1], kind="stable")
    frame = frame.assign(rank=np.arange(1, len(frame) + 1))
    return frame[PLAN_COLUMNS].reset_index(drop=True)


def plan_refresh(
    histories: pd.DataFrame,
    profiles: pd.DataFrame,
    student: pd.DataFrame | None = None,
    earlier_histories: pd.DataFrame | None = None,
    min_drift: float = 0.0,
) -> pd.DataFrame:
    """Rank the snapshot's users for regeneration, in memory (every candidate; apply a budget after).

    Args:
        histories: the current HISTORIES rows (user_id, history_hash, history_length, history_json).
        profiles: each user's latest PROFILES row (user_id, history_hash, history_length, generator).
        student: USER_STUDENT rows (user_id, profile_drift); None: no drift known.
        earlier_histories: earlier HISTORIES rows (user_id, history_hash, last_interaction_at)
            to count the interactions a profile has not seen.
        min_drift: drift-only candidates need at least this drift.

    Returns:
        PLAN_COLUMNS rows, rank 1 first. Users without a history are not planned: the
        profile job could not regenerate them.
    """
    joined = join_inputs(histories, profiles, student, earlier_histories)
    return rank_plan(score_candidates(joined, min_drift))


def budget_size(users: int, budget: int | None = None, fraction: float | None = None) -> int:
    """Users to regenerate: `budget`, or floor(`fraction` x users with a history); exactly one is given."""
    if (budget is None) == (fraction is None):
        raise ValueError("give exactly one of budget and budget fraction")
    if budget is not None:
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        return budget
    if not 0 <= fraction <= 1:
        raise ValueError(f"budget fraction must be in [0, 1], got {fraction}")
    return math.floor(fraction * users)


def select_budget(plan: pd.DataFrame, size: int) -> pd.DataFrame:
    """The first `size` users of the plan (fewer when there are fewer candidates)."""
    return plan.head(size).reset_index(drop=True)


def write_plan(plan: pd.DataFrame, path: str | Path) -> str:
    """Parquet, or CSV when the name ends in .csv, at any path or storage URI; the profile job reads either."""
    if str(path).lower().endswith(".csv"):
        data = plan.to_csv(index=False).encode()
    else:
        buffer = io.BytesIO()
        plan.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    return storage.write_bytes(path, data)


def check_refresh_list(listed: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a refresh list into usable user ids and rejects (REJECTS rows with a reason).

    A row is rejected for a missing user id or as a repeat of an earlier row; unknown users
    are found later, against the snapshot's histories.

    Raises:
        ValueError: when the list has no `user_id` column (names the file).
    """
    if "user_id" not in listed.columns:
        raise ValueError(f"{source}: a refresh list needs a user_id column (has {list(listed.columns)})")
    ids = listed["user_id"].astype("string").str.strip()
    reason = pd.Series(pd.NA, index=listed.index, dtype="string")
    reason[ids.isna() | (ids == "")] = "missing_user_id"
    reason[reason.isna() & ids.duplicated()] = "duplicate_user_id"
    rejected = listed[reason.notna()]
    rejects = pd.DataFrame(
        {
            "table": "refresh_list",
            "source_file": source,
            "reason": reason[reason.notna()].astype(str),
            "record": [json.dumps(r, default=str) for r in rejected.to_dict("records")],
        },
        columns=["table", "source_file", "reason", "record"],
    )
    usable = pd.DataFrame({"user_id": ids[reason.isna()].astype(str).to_numpy()})
    return usable, rejects
