"""User histories as of a cutoff, and the plain behavioural stats beside them.

`events` are validated interactions with the item text joined in. Only events strictly
before the cutoff are used, so a profile written from a history never saw what
happened at or after the time it is served for (no leakage into point-in-time joins).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pandas as pd

from profile_features.schemas import to_utc

__all__ = ["EVENT_COLUMNS", "build_histories", "history_hash", "history_events"]

EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "rating", "event_type", "title", "genres", "year", "description"]


def _utc_events(events: pd.DataFrame) -> pd.DataFrame:
    return events.assign(timestamp=to_utc(events["timestamp"]))


def _before(events: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    events = _utc_events(events)
    kept = events[events["timestamp"] < pd.Timestamp(cutoff)]
    # item_id, then the event's own JSON, break timestamp ties: the order (and the hash) is deterministic.
    kept = kept.assign(_json=[_event_json(row) for row in kept[EVENT_COLUMNS].itertuples(index=False)])
    return kept.sort_values(["user_id", "timestamp", "item_id", "_json"], kind="stable")


def _event_json(row: tuple) -> str:
    # Compact, sorted keys, nulls kept: the bytes the Spark stage writes with to_json.
    return json.dumps(_event_dict(row), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _event_dict(row: tuple) -> dict:
    user_id, item_id, ts, rating, event_type, title, genres, year, description = row
    return {
        "item_id": item_id,
        "timestamp": pd.Timestamp(ts).isoformat(timespec="microseconds"),
        "rating": None if pd.isna(rating) else float(rating),
        "event_type": event_type,
        "title": title,
        "genres": [g for g in (genres or "").split("|") if g],
        "year": None if pd.isna(year) else int(year),
        "description": description or "",
    }


def build_histories(events: pd.DataFrame, cutoff: datetime, max_length: int) -> pd.DataFrame:
    """The last `max_length` events per user strictly before `cutoff` (the pandas reference of the
    Spark stage, `profile_features.spark.histories.history_rows`, which writes the same bytes).

    Args:
        events: EVENT_COLUMNS rows for whole users (any order).
        cutoff: tz-aware UTC time the histories are cut at; becomes `event_timestamp`.
        max_length: events kept per user (most recent).

    Returns:
        HISTORIES rows, one per user with at least one event before the cutoff.
    """
    recent = _before(events[EVENT_COLUMNS], cutoff).groupby("user_id", sort=False).tail(max_length)
    rows = []
    for user_id, group in recent.groupby("user_id", sort=True):
        history_json = "[" + ",".join(group["_json"]) + "]"
        rows.append(
            {
                "user_id": user_id,
                "event_timestamp": pd.Timestamp(cutoff),
                "item_ids": list(group["item_id"]),
                "history_json": history_json,
                "history_length": len(group),
                "last_interaction_at": group["timestamp"].iloc[-1],
                "history_hash": history_hash(history_json),
            }
        )
    columns = [
        "user_id",
        "event_timestamp",
        "item_ids",
        "history_json",
        "history_length",
        "last_interaction_at",
        "history_hash",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("event_timestamp", "last_interaction_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame


def history_hash(history_json: str) -> str:
    """Content hash of a history: the profile cache's key, so any change means a new profile."""
    return hashlib.sha256(history_json.encode()).hexdigest()[:32]


def history_events(history_json: str) -> list[dict]:
    """Decode a `history_json` value (oldest -> newest)."""
    return json.loads(history_json)
