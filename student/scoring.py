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
- `student_variant` names what the deployment guard shipped (student/guard.py): `configured`,
  `without_item_content`, `plain_sasrec` or `popularity` (the item ranking is most-popular's; the
  user vectors still come from the trained model). Same for every row of a checkpoint.
- `profile_drift` = 1 - cosine(student_profile_embedding, profile_embedding); null (NaN) when
  the input profile is missing, null, empty or all zeros, or the student has no profile head,
  and for fallback rows (the prior says nothing about the user). A profile of the wrong width
  is an error.

Served vectors are in the first checkpoint's basis when the checkpoint carries an output rotation
(student/alignment.py); dot products do not change.

`score_items` gives the item side: the vector and bias the student scores each item with, so
`student_embedding . student_item_embedding + student_item_bias` is the student's next-item
logit for that user and item (a GBDT column; `student_item_score` in Feast). Items training saw
use their ID view; items it never saw, and new items with content, their semantic views alone.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from profile_features.student.checkpoint import LoadedStudent, checkpoint_location, load_checkpoint
from profile_features.student.data import pad_left
from profile_features.student.guard import POPULARITY

__all__ = ["OUTPUT_COLUMNS", "ITEM_OUTPUT_COLUMNS", "load_student", "score_users", "score_items"]

OUTPUT_COLUMNS = [
    "user_id",
    "student_embedding",
    "student_profile_embedding",
    "profile_drift",
    "student_history_len",
    "student_fallback",
    "student_checkpoint_id",
    "student_variant",
]

ITEM_OUTPUT_COLUMNS = [
    "item_id",
    "student_item_embedding",
    "student_item_bias",
    "student_item_seen",
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
        (known items used), `student_fallback` bool, `student_checkpoint_id` str, `student_variant` str.
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
    if model.output_rotation is not None:  # the predecessor's basis (student/alignment.py): dot products kept
        states = states @ model.output_rotation
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
            "student_variant": model.variant,
        },
        columns=OUTPUT_COLUMNS,
    )


def _content(items: pd.DataFrame, rows: np.ndarray, text_dim: int, levels: int):
    """(text [M, D] or None, codes [M, L] or None, has content [M]) of `items` rows `rows`."""
    text = codes = None
    has = np.zeros(len(rows), dtype=bool)
    if text_dim and "item_text_embedding" in items.columns:
        text = np.zeros((len(rows), text_dim), dtype=np.float32)
        for k, value in enumerate(items["item_text_embedding"].to_numpy()[rows]):
            if value is not None and len(value) == text_dim:
                text[k] = np.asarray(value, dtype=np.float32)
                has[k] = bool(np.any(text[k]))
    if levels:
        columns = [f"item_sid_{level}" for level in range(levels)]
        codes = np.full((len(rows), levels), -1, dtype=np.int64)
        if all(c in items.columns for c in columns):
            codes = items[columns].iloc[rows].fillna(-1).to_numpy(dtype=np.int64)
        has |= (codes >= 0).any(1)
    return text, codes, has


@torch.no_grad()
def score_items(items: pd.DataFrame, model: LoadedStudent, batch_size: int = 4096) -> pd.DataFrame:
    """The item side of the student's score.

    Args:
        items: One row per item: `item_id` and, for items outside the checkpoint's index, their content:
            `item_text_embedding` (list of float) and/or `item_sid_0..L-1` (int, -1 or null = none).
        model: A `LoadedStudent`.

    Returns:
        One row per input row, same order, columns `ITEM_OUTPUT_COLUMNS`: `student_item_embedding`
        float32 [H] (None when the item cannot be represented: unknown to an ID-only student, or
        unknown with no content, and for every item when the guard shipped the popularity prior),
        `student_item_bias` float (NaN likewise), `student_item_seen` bool (training saw the item:
        its ID view is used).
    """
    net = model.model
    net.eval()
    encoder = net.items
    n = len(items)
    h = net.cfg.body.hidden_size
    vectors = np.full((n, h), np.nan, dtype=np.float32)
    bias = np.full(n, np.nan, dtype=np.float64)
    index = model.item_index.to_index
    known = np.array([index.get(str(i), 0) for i in items["item_id"]], dtype=np.int64)
    seen = encoder.seen.cpu().numpy()
    scale = float(net.head.scale)
    rows = np.flatnonzero(known > 0)
    if len(rows):
        table = encoder.table()[1:]
        all_bias = net.head.item_bias(torch.arange(1, len(table) + 1, device=net.device), table, None)
        index_rows = torch.as_tensor(known[rows] - 1, device=net.device)
        vectors[rows] = (scale * table[index_rows]).cpu().numpy()
        bias[rows] = all_bias[index_rows].double().cpu().numpy()
    new = np.flatnonzero(known == 0)
    if len(new) and encoder.semantic:
        text, codes, has = _content(items, new, encoder.text_dim, len(encoder.code_sizes))
        for start in range(0, len(new), batch_size):
            part = slice(start, start + batch_size)
            out = encoder.content_vectors(
                None if text is None else torch.as_tensor(text[part]),
                None if codes is None else torch.as_tensor(codes[part]),
            )
            keep = torch.as_tensor(has[part])
            vectors[new[part][has[part]]] = (scale * out[keep]).cpu().numpy()
            bias[new[part][has[part]]] = net.head.content_item_bias(out[keep]).double().cpu().numpy()
    if model.variant == POPULARITY:
        # The prior's "logit" is an item's popularity (item_stats serves that): no item side is served, so a
        # ranker trained on this snapshot cannot learn a student_item_score whose meaning the next snapshot's
        # trained student changes (on the sample that cost the cold users 26% NDCG@10).
        vectors[:], bias[:] = np.nan, np.nan
    present = ~np.isnan(bias)
    if model.output_rotation is not None:  # as the user vectors: the predecessor's basis
        vectors = vectors @ model.output_rotation
    return pd.DataFrame(
        {
            "item_id": items["item_id"].astype(str).to_numpy(),
            "student_item_embedding": [vectors[i] if present[i] else None for i in range(n)],
            "student_item_bias": bias,
            "student_item_seen": seen[known] & (known > 0),
            "student_checkpoint_id": model.checkpoint_id,
        },
        columns=ITEM_OUTPUT_COLUMNS,
    )
