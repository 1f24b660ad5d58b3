"""Keep a retrained student's served vectors in its predecessor's coordinates.

Every snapshot trains a new student, and a new training lands in an arbitrary basis: the same item
gets an unrelated `student_item_embedding`. A ranker trained on one snapshot's vectors and served the
next one's (a two-tower fed `student_embedding`, the usual case between two trainings of the ranker)
then reads unrelated coordinates (tests/unit/student/test_alignment.py: the same items' vectors of two
trainings have a mean cosine of 0.04; after the map 0.80). So a new checkpoint carries an orthogonal
map `R` (H x H) fitted on the items both checkpoints were trained on (orthogonal Procrustes: the
rotation that best carries the new item vectors onto the previous checkpoint's served ones), and every
served vector is multiplied by it. Dot products and cosines are unchanged (R is orthogonal), so the student's scores,
`student_item_score` and every similarity column stay exactly what they were; only the coordinates a
downstream model reads stay put. Chained snapshot to snapshot, all of them share the first one's basis.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MIN_SHARED_ITEMS", "seen_item_vectors", "procrustes", "fit_output_rotation"]

# Fewer shared items than this: no rotation is fitted. With fewer than H (the hidden size) the map is exact on
# the shared items' span and arbitrary (but still orthogonal, so scores stay unchanged) on the rest.
MIN_SHARED_ITEMS = 32


@torch.no_grad()
def seen_item_vectors(net, item_ids) -> dict[str, np.ndarray]:
    """item id -> the model's (unscaled) vector, for the items its training saw."""
    table = net.items.table()[1:].float().cpu().numpy()
    seen = net.items.seen[1:].cpu().numpy()
    return {str(item): table[k] for k, item in enumerate(item_ids) if seen[k]}


def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal R minimising ||source @ R - target|| (rows paired)."""
    u, _, vt = np.linalg.svd(source.astype(np.float64).T @ target.astype(np.float64))
    return u @ vt


def fit_output_rotation(net, item_ids, previous) -> np.ndarray | None:
    """R for a new model (`net`, its index's `item_ids`) against the `previous` LoadedStudent's served
    basis; None when they do not share enough seen items or differ in width."""
    new = seen_item_vectors(net, item_ids)
    old = seen_item_vectors(previous.model, previous.item_index.item_ids)
    shared = sorted(set(new) & set(old))
    width = net.cfg.body.hidden_size
    if len(shared) < MIN_SHARED_ITEMS or previous.model.cfg.body.hidden_size != width:
        return None
    target = np.stack([old[i] for i in shared])
    if previous.output_rotation is not None:
        target = target @ previous.output_rotation
    return procrustes(np.stack([new[i] for i in shared]), target).astype(np.float32)
