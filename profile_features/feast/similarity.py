"""The request-time user x item similarity transformation.

Feast re-creates on-demand transformations from their source text with only `pd`
and `np` in scope, so this function imports what it needs inside and calls no
module-level helper.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["user_item_similarity"]


def user_item_similarity(inputs: pd.DataFrame) -> pd.DataFrame:
    """Cosine of each user vector present with the item's text embedding.

    Args:
        inputs: rows with `item_text_embedding` and `profile_embedding` and, when the
            student view is part of the repo, `student_profile_embedding` (lists of
            floats, or None when missing).

    With the student's item side (`student_embedding`, `student_item_embedding`,
    `student_item_bias`) also `student_item_score`: the student's next-item logit for the pair
    (user vector . item vector + item bias; NaN where a part is missing).

    Returns:
        `profile_item_similarity` and, with the student, `student_item_similarity` and
        `student_item_score` (float64, NaN where either vector is missing, or malformed: a component
        that is not a finite float32, as serving.SemanticScorer rules, so both paths agree).
    """
    import numpy as np
    import pandas as pd

    pairs = [("profile_embedding", "profile_item_similarity"), ("student_profile_embedding", "student_item_similarity")]
    items = inputs["item_text_embedding"].tolist()
    out = pd.DataFrame(index=inputs.index)
    for user_column, output in pairs:
        if user_column not in inputs.columns:
            continue
        users = inputs[user_column].tolist()
        present = np.array(
            [u is not None and v is not None and len(u) > 0 and len(u) == len(v) for u, v in zip(users, items)],
            dtype=bool,
        )
        similarity = np.full(len(users), np.nan)
        if present.any():
            u = np.stack([np.asarray(users[i], dtype=np.float64) for i in np.flatnonzero(present)])
            v = np.stack([np.asarray(items[i], dtype=np.float64) for i in np.flatnonzero(present)])
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                # Malformed (not finite as float32) scores NaN; float64 cannot overflow within float32's range.
                fits = np.isfinite(u.astype(np.float32)).all(axis=1) & np.isfinite(v.astype(np.float32)).all(axis=1)
                norms = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
                similarity[present] = np.where(fits & (norms > 0), (u * v).sum(axis=1) / norms, np.nan)
        out[output] = similarity
    if {"student_embedding", "student_item_embedding", "student_item_bias"} <= set(inputs.columns):
        users, vectors = inputs["student_embedding"].tolist(), inputs["student_item_embedding"].tolist()
        bias = pd.to_numeric(inputs["student_item_bias"], errors="coerce").to_numpy(dtype=np.float64)
        ok = np.array(
            [u is not None and v is not None and len(u) > 0 and len(u) == len(v) for u, v in zip(users, vectors)],
            dtype=bool,
        ) & np.isfinite(bias)
        score = np.full(len(users), np.nan)
        if ok.any():
            u = np.stack([np.asarray(users[i], dtype=np.float64) for i in np.flatnonzero(ok)])
            v = np.stack([np.asarray(vectors[i], dtype=np.float64) for i in np.flatnonzero(ok)])
            with np.errstate(invalid="ignore", over="ignore"):
                fits = np.isfinite(u.astype(np.float32)).all(axis=1) & np.isfinite(v.astype(np.float32)).all(axis=1)
                score[ok] = np.where(fits, (u * v).sum(axis=1) + bias[ok], np.nan)
        out["student_item_score"] = score
    return out
