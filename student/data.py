"""Interaction data for the student: item index, per-user sequences, splits, padding.

Inputs are pandas frames with `user_id`, `item_id`, `timestamp` (ids are cast to str).
Sequences are ordered by timestamp, ties broken by input row order (stable sort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

__all__ = [
    "ItemIndex",
    "user_sequences",
    "user_timelines",
    "time_values",
    "LeaveLastOutSplit",
    "leave_last_out",
    "TemporalSplit",
    "temporal_split",
    "pad_left",
]


@dataclass(frozen=True)
class ItemIndex:
    """item_id (str) <-> index 1..N; 0 is padding."""

    item_ids: tuple[str, ...]

    @classmethod
    def from_items(cls, item_ids) -> "ItemIndex":
        return cls(tuple(sorted({str(i) for i in item_ids})))

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def to_index(self) -> dict[str, int]:
        cached = self.__dict__.get("_to_index")
        if cached is None:
            cached = {item: i + 1 for i, item in enumerate(self.item_ids)}
            object.__setattr__(self, "_to_index", cached)
        return cached

    def encode(self, items) -> list[int]:
        """Map item ids to indices, skipping ids unknown to the index."""
        lookup = self.to_index
        return [lookup[s] for s in map(str, items) if s in lookup]

    def encode_timed(self, items, times) -> tuple[list[int], np.ndarray]:
        """`encode` with each kept item's time: (indices, [n] int64 times of those items)."""
        lookup = self.to_index
        keep = [(lookup[s], t) for s, t in zip(map(str, items), times) if s in lookup]
        return [i for i, _ in keep], np.array([t for _, t in keep], dtype=np.int64)


def user_sequences(interactions: pd.DataFrame) -> dict[str, list[str]]:
    """user_id -> item ids ordered oldest -> newest."""
    df = interactions[["user_id", "item_id", "timestamp"]].copy()
    df["user_id"] = df["user_id"].astype(str)
    df["item_id"] = df["item_id"].astype(str)
    df = df.reset_index(drop=True)
    df["_row"] = np.arange(len(df))
    df = df.sort_values(["user_id", "timestamp", "_row"], kind="stable")
    return {u: list(g["item_id"]) for u, g in df.groupby("user_id", sort=True)}


def time_values(timestamps: pd.Series) -> np.ndarray:
    """[n] int64 times that order like `timestamps`: epoch microseconds for datetimes, the numbers
    themselves (e.g. epoch seconds) otherwise. Only order and quantiles are read from them."""
    if pd.api.types.is_datetime64_any_dtype(timestamps):
        values = pd.to_datetime(timestamps, utc=True).dt.tz_convert(None).astype("datetime64[us]")
        return values.to_numpy().astype(np.int64)
    return pd.to_numeric(timestamps).to_numpy().astype(np.int64)


def user_timelines(interactions: pd.DataFrame) -> dict[str, tuple[list[str], np.ndarray]]:
    """user_id -> (item ids oldest -> newest, [n] int64 `time_values` of those interactions)."""
    df = interactions[["user_id", "item_id"]].astype(str).reset_index(drop=True)
    df["_time"] = time_values(interactions["timestamp"].reset_index(drop=True))
    df["_row"] = np.arange(len(df))
    df = df.sort_values(["user_id", "_time", "_row"], kind="stable")
    return {u: (list(g["item_id"]), g["_time"].to_numpy()) for u, g in df.groupby("user_id", sort=True)}


@dataclass(frozen=True)
class LeaveLastOutSplit:
    """Leave-last-out: train on all but the last two items, validate on the next-to-last, test on the last.

    `train` are the histories training (and profile writing) may see; `valid_target` /
    `test_target` are the held-out items; the test input is train + valid item.
    """

    train: dict[str, list[str]]
    valid_target: dict[str, str]
    test_target: dict[str, str]

    def test_input(self, user: str) -> list[str]:
        return self.train[user] + [self.valid_target[user]]


def leave_last_out(sequences: dict[str, list[str]], min_train: int = 1) -> LeaveLastOutSplit:
    """Split every user with at least `min_train` + 2 interactions."""
    train, valid, test = {}, {}, {}
    for user, seq in sequences.items():
        if len(seq) < min_train + 2:
            continue
        train[user], valid[user], test[user] = seq[:-2], seq[-2], seq[-1]
    return LeaveLastOutSplit(train, valid, test)


@dataclass(frozen=True)
class TemporalSplit:
    """The paper's protocol: a global time cutoff at a quantile of timestamps.

    `train`: every user's interactions before the cutoff (what training and profiles see).
    `test_input` / `test_target`: for users with interactions on both sides of the cutoff,
    the whole history but the last item, and that last item.
    """

    cutoff: float
    train: dict[str, list[str]]
    test_input: dict[str, list[str]]
    test_target: dict[str, str]


def temporal_split(interactions: pd.DataFrame, quantile: float = 0.8) -> TemporalSplit:
    """Global temporal split at the `quantile` of timestamps."""
    ts = pd.to_numeric(interactions["timestamp"])
    cutoff = float(ts.quantile(quantile))
    before = user_sequences(interactions[ts < cutoff])
    full = user_sequences(interactions)
    after_users = set(interactions.loc[ts >= cutoff, "user_id"].astype(str))
    test_input, test_target = {}, {}
    for user in sorted(after_users & set(before)):
        seq = full[user]
        test_input[user], test_target[user] = seq[:-1], seq[-1]
    return TemporalSplit(cutoff, before, test_input, test_target)


def pad_left(sequences: list[list[int]], max_len: int, width: int | None = None) -> torch.Tensor:
    """Left-pad index sequences with 0, keeping the newest `max_len` items.

    Args:
        sequences: B lists of item indices, oldest -> newest.
        max_len: Longest history kept.
        width: Output width T (default: longest kept sequence, at least 1).

    Returns:
        [B, T] long tensor.
    """
    kept = [s[-max_len:] for s in sequences]
    t = width or max(1, max((len(s) for s in kept), default=1))
    out = np.zeros((len(kept), t), dtype=np.int64)
    for row, seq in enumerate(kept):
        if seq:
            out[row, t - len(seq) :] = seq[-t:]
    return torch.from_numpy(out)
