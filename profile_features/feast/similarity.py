"""The request-time user x item similarity transformation.

Feast re-creates on-demand transformations from their source text with only `pd`
and `np` in scope, so this function imports what it needs inside and calls no
module-level helper.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["profile_item_similarity"]


def profile_item_similarity(inputs: pd.DataFrame) -> pd.DataFrame:
    """Cosine similarity of the user's profile embedding and the item's text embedding.

    Args:
        inputs: rows with `profile_embedding` and `item_text_embedding` (lists of
            floats, or None when the user or item has no vector).

    Returns:
        `profile_item_similarity` (float64, NaN where either vector is missing).
    """
    import numpy as np
    import pandas as pd

    users = inputs["profile_embedding"].tolist()
    items = inputs["item_text_embedding"].tolist()
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
    return pd.DataFrame({"profile_item_similarity": similarity}, index=inputs.index)
