"""Pure batch scoring: histories in, student features out (pandas in, pandas out).

Meant to be wrapped by Spark `mapInPandas`: call `load_student(path)` inside the partition
function (it is cached per process, so once per executor), then `score_users(batch, student)`.

Stated behaviour:
- Items unknown to the checkpoint's item index are skipped; the newest `max_len` known items
  are used.
- A user with a single known item is scored normally (a length-1 sequence).
- A user (known or not at training time: the student has no user embeddings) with no known
  item gets the fallback: the mean training-user representation and mean predicted profile,
  with `student_fallback = True`.
- `profile_drift` = 1 - cosine(student_profile_embedding, profile_embedding); null (NaN) when
  the input profile is missing, null, empty or all zeros, or the student has no profile head,
  and for fallback rows (the prior says nothing about the user). A profile of the wrong width
  is an error.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from student.checkpoint import LoadedStudent, checkpoint_location, load_checkpoint
from student.data import pad_left

__all__ = ["OUTPUT_COLUMNS", "load_student", "score_users"]

OUTPUT_COLUMNS = [
    "user_id",
    "student_embedding",
    "student_profile_embedding",
    "profile_drift",
    "student_history_len",
    "student_fallback",
    "student_checkpoint_id",
]


@lru_cache(maxsize=4)
def _load_cached(path: str, device: str, num_threads: int | None) -> LoadedStudent:
    if num_threads:
        torch.set_num_threads(num_threads)
    return load_checkpoint(path, device=device)


def load_student(path: str | Path, device: str = "cpu", num_threads: int | None = None) -> LoadedStudent:
    """Load a checkpoint once per process (cached by the version it points to, device, threads).

    Args:
        path: Checkpoint folder or URI written by `save_checkpoint`.
        device: "cpu", "cuda" or "auto".
        num_threads: torch intra-op threads to set on first load (None = leave as is).
    """
    return _load_cached(checkpoint_location(path), device, num_threads)


def _profile_vector(value, dim: int) -> np.ndarray | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    vec = np.asarray(value, dtype=np.float32).reshape(-1)
    if vec.size == 0 or not np.any(vec) or not np.all(np.isfinite(vec)):
        return None
    if vec.size != dim:
        raise ValueError(f"profile_embedding has width {vec.size}, the student expects {dim}")
    return vec


@torch.no_grad()
def score_users(histories: pd.DataFrame, model: LoadedStudent, batch_size: int = 512) -> pd.DataFrame:
    """Score users with the student.

    Args:
        histories: One row per user: `user_id` (str), `item_ids` (list of str, oldest -> newest),
            optionally `profile_embedding` (list/array of float32 [P], may be null).
        model: A `LoadedStudent` (from `load_student` / `load_checkpoint`).
        batch_size: Users per forward pass.

    Returns:
        One row per input row, same order, columns `OUTPUT_COLUMNS`:
        `student_embedding` float32 [H] list, `student_profile_embedding` float32 [P] list (None
        without a profile head), `profile_drift` float (NaN = null), `student_history_len` int
        (known items used), `student_fallback` bool, `student_checkpoint_id` str.
    """
    net = model.model
    net.eval()
    n = len(histories)
    max_len = net.cfg.body.max_len
    encoded = [model.item_index.encode(list(items) if items is not None else []) for items in histories["item_ids"]]
    lengths = np.array([min(len(s), max_len) for s in encoded], dtype=np.int64)
    fallback = lengths == 0
    h = net.cfg.body.hidden_size
    states = np.tile(net.fallback_state.cpu().numpy().astype(np.float32), (n, 1))
    has_head = net.distill_head is not None
    p = net.profile_dim
    profiles = np.tile(net.fallback_profile.cpu().numpy().astype(np.float32), (n, 1)) if has_head else None
    # Batches of similar lengths pad less; outputs do not depend on the padding width.
    rows = np.flatnonzero(~fallback)
    rows = rows[np.argsort(lengths[rows], kind="stable")]
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        items = pad_left([encoded[i] for i in idx], max_len).to(net.device)
        out = net.encode(items)
        states[idx] = out["state"].float().cpu().numpy()
        if has_head:
            profiles[idx] = out["profile"].float().cpu().numpy()
    drift = np.full(n, np.nan, dtype=np.float64)
    if has_head and "profile_embedding" in histories.columns:
        for row, value in enumerate(histories["profile_embedding"]):
            vec = _profile_vector(value, p)
            if vec is None or fallback[row]:
                continue
            pred = profiles[row]
            denom = float(np.linalg.norm(pred) * np.linalg.norm(vec))
            drift[row] = 1.0 - float(pred @ vec) / denom if denom > 0 else np.nan
    return pd.DataFrame(
        {
            "user_id": histories["user_id"].astype(str).to_numpy(),
            "student_embedding": list(states.reshape(n, h)),
            "student_profile_embedding": list(profiles) if has_head else [None] * n,
            "profile_drift": drift,
            "student_history_len": lengths,
            "student_fallback": fallback,
            "student_checkpoint_id": model.checkpoint_id,
        },
        columns=OUTPUT_COLUMNS,
    )
