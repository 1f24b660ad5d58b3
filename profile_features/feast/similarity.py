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

    Returns:
        `profile_item_similarity` and, with the student, `student_item_similarity`
        (float64, NaN where either vector is missing).
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
            norms = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                similarity[present] = np.where(norms > 0, (u * v).sum(axis=1) / norms, np.nan)
        out[output] = similarity
    return out
