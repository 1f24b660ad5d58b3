"""Fixtures for the student unit tests: small synthetic data (tests/support/student.py), and a student
trained on it (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch

from profile_features.student.data import ItemIndex, user_sequences
from profile_features.student.training import build_training_data, fit
from tests.support.student import cyclic_interactions, group_profiles, tiny_config


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
    """tiny_config(*overrides) (tests/support/student.py) as a fixture."""
    return tiny_config
