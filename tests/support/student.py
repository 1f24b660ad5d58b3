"""Small synthetic data for the student tests (CPU, seconds): cyclic sequences whose next item is
determined, anisotropic group profiles, and a tiny student config."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profile_features.student.config import load_student_config

NUM_ITEMS = 24
PROFILE_DIM = 8


def cyclic_interactions(
    num_users: int = 48, length: int = 30, num_items: int = NUM_ITEMS, seed: int = 0
) -> pd.DataFrame:
    """Each user walks the cycle i1 -> i2 -> ... -> iN -> i1 from a random start: the next item is determined."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(num_users):
        start = int(rng.integers(num_items))
        for t in range(length):
            rows.append((f"u{u}", f"i{(start + t) % num_items + 1}", 1_000 + t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def group_profiles(users: list[str], dim: int = PROFILE_DIM, seed: int = 0) -> dict[str, np.ndarray]:
    """Anisotropic profiles: a shared offset plus one of 4 group directions plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=dim) * 3
    groups = rng.normal(size=(4, dim))
    return {u: (base + groups[i % 4] + 0.1 * rng.normal(size=dim)).astype(np.float32) for i, u in enumerate(users)}


def tiny_config(*overrides: str):
    return load_student_config(
        None,
        [
            "body.hidden_size=32",
            "body.num_blocks=1",
            "body.max_len=20",
            "body.dropout=0.0",
            "train.epochs=40",
            "train.batch_size=16",
            "train.lr=0.005",
            "train.num_threads=1",
            "train.device=cpu",
            "train.patience=null",
            *overrides,
        ],
    )
