"""The LLM profile fidelity benchmark's scoring: own-user retrieval after centring."""

import numpy as np
import pytest

from tests.support.repo import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("profile_fidelity")


def test_own_user_retrieval_known_answers(bench):
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(6, 16))
    assert bench.own_user_retrieval(gallery + 0.05 * rng.normal(size=gallery.shape), gallery) == (1.0, 1.0)
    # Every query describes the next user: nobody finds their own profile first.
    top1, mrr = bench.own_user_retrieval(np.roll(gallery, 1, axis=0), gallery)
    assert top1 == 0.0 and mrr < 0.5


def test_a_shared_offset_does_not_hide_or_fake_identity(bench):
    # Anisotropic embeddings: a large common component; centring removes it.
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(8, 16))
    offset = 50 * rng.normal(size=16)
    assert bench.own_user_retrieval(gallery + offset, gallery)[0] == 1.0
    unrelated = rng.normal(size=(8, 16)) + offset
    assert bench.own_user_retrieval(unrelated, gallery + offset)[0] < 0.5


def test_mentions_top_genre(bench):
    events = [{"genres": ["Drama"]}, {"genres": ["Drama", "Comedy"]}]
    assert bench.mentions_top_genre("Loves quiet DRAMA.", events)
    assert not bench.mentions_top_genre("Mostly comedy.", events)
    assert not bench.mentions_top_genre("anything", [])
