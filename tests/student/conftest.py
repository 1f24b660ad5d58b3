"""Small synthetic data for student tests (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from profile_features.student.config import load_student_config
from profile_features.student.data import ItemIndex, user_sequences
from profile_features.student.training import build_training_data, fit

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


@pytest.fixture(scope="session")
def cyclic_data():
    inter = cyclic_interactions()
    seqs = user_sequences(inter)
    index = ItemIndex.from_items(inter["item_id"])
    profiles = group_profiles(sorted(seqs))
    return inter, seqs, index, profiles


@pytest.fixture(scope="session")
def trained(cyclic_data):
    """A distilled student trained on all but each user's last item."""
    _, seqs, index, profiles = cyclic_data
    torch.manual_seed(0)
    data = build_training_data({u: s[:-1] for u, s in seqs.items()}, index, profiles)
    # Distil for every epoch with a visible weight: this fixture tests the loss, not the default schedule.
    return fit(tiny_config("distill.alpha=0.4", "distill.distill_fraction=1.0"), data, None, log=None), data


@pytest.fixture(scope="session")
def make_config():
    """tiny_config(*overrides) as a fixture (test modules here are not a package)."""
    return tiny_config
