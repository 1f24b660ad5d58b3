"""The two-tower evaluation: metrics by hand, the dense-input encoding, validation hold-out and early
stopping (one real run on a small pipeline: tests/integration/test_two_tower.py)."""

import numpy as np
import pandas as pd
import pytest

from profile_features.evaluation.rankers.two_tower import (
    DenseEncoder,
    HeldOutSet,
    TowerInputs,
    TrainingSet,
    fit_two_tower,
    retrieval_metrics,
    split_validation,
)


def test_retrieval_metrics_remove_seen_items_and_match_hand_computed_values():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
    seen = np.array([[True, False, False, False, False], [False, False, False, False, True]])
    # User 0: item 0 is a target but was seen: it is neither ranked nor counted.
    # Ranked list after removal: items 1, 2, 3, 4; targets 2 and 4 sit at ranks 2 and 4.
    # User 1: its only target was seen, so no metric exists for it.
    targets = np.array([[True, False, True, False, True], [False, False, False, False, True]])
    out = retrieval_metrics(scores, seen, targets, k=2)
    assert list(out.index) == [0]
    row = out.loc[0]
    assert row["recall@2"] == pytest.approx(0.5) and row["recall@50"] == pytest.approx(1.0)
    assert row["hr@2"] == 1.0 and row["mrr"] == pytest.approx(0.5)
    assert row["ndcg@2"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))


def test_dense_encoder_standardises_with_training_statistics_and_flags_missing_vectors():
    train = pd.DataFrame({"a": [[1.0, 10.0], [3.0, 30.0], None], "b": [[2.0], [2.0], [4.0]]})
    encoder = DenseEncoder.fit(train, ["a", "b"])
    assert encoder.width == 2 + 1 + 2
    out = encoder.transform(train)
    np.testing.assert_allclose(out[:, :2], [[-1, -1], [1, 1], [0, 0]], atol=1e-4)  # missing row: zeros
    np.testing.assert_allclose(out[:, 3:], [[1, 1], [1, 1], [0, 1]])  # present flags of a, b
    serving = encoder.transform(pd.DataFrame({"a": [[5.0, 50.0]], "b": [np.array([], dtype=np.float32)]}))
    np.testing.assert_allclose(serving[0], [3, 3, 0, 1, 0], atol=1e-3)  # training mean/std, empty = missing


def test_a_dimension_constant_in_training_reads_zero_at_serving():
    """As the popularity-prior student's all-zero item vectors, then its successor's real ones: the
    tower never saw the dimension vary, so serving values there must not reach it (they were blown up
    by a near-zero spread)."""
    train = pd.DataFrame({"v": [[0.0, 1.0], [0.0, 3.0], [0.0, 5.0]]})
    encoder = DenseEncoder.fit(train, ["v"])
    serving = encoder.transform(pd.DataFrame({"v": [[1.43, 3.0], [-2.0, 5.0]]}))
    np.testing.assert_allclose(serving[:, 0], [0.0, 0.0])
    np.testing.assert_allclose(serving[:, 1], [0.0, 2.0 / np.std([1.0, 3.0, 5.0])], rtol=1e-5)


def test_a_column_no_training_row_has_reads_as_absent_at_serving():
    """The popularity prior serves no item vectors at all; its successor does: the tower trained without
    them reads them as absent (flag 0), never fails and never sees values it was not trained on."""
    encoder = DenseEncoder.fit(pd.DataFrame({"a": [[1.0], [3.0]], "v": [None, None]}), ["a", "v"])
    assert encoder.width == 1 + 2
    serving = encoder.transform(pd.DataFrame({"a": [[3.0]], "v": [[0.5, 0.25]]}))
    np.testing.assert_allclose(serving, [[1.0, 1.0, 0.0]], atol=1e-5)


def _tiny_training_set() -> TrainingSet:
    """4 users, 6 items: u0/u1 had items 0-1 and take 2; u2/u3 had 3-4 and take 5."""
    history = [np.array([0, 1]), np.array([0, 1]), np.array([3, 4]), np.array([3, 4])]
    inputs = TowerInputs(
        np.array(["u0", "u1", "u2", "u3"]), history, np.zeros((4, 0), np.float32), np.zeros((6, 0), np.float32)
    )
    known = np.zeros((4, 6), dtype=bool)
    for row, had in enumerate(history):
        known[row, had] = True
    known[[0, 1], 2] = known[[2, 3], 5] = True
    return TrainingSet(inputs, np.array([0, 1, 2, 3]), np.array([2, 2, 5, 5]), known)


def test_split_validation_holds_users_out_and_scores_them_like_test_users():
    fit, valid = split_validation(_tiny_training_set(), ["u1", "u3"])
    assert list(fit.row_user) == [0, 2] and list(fit.row_item) == [2, 5]  # only u0, u2 train
    assert isinstance(valid, HeldOutSet) and list(valid.inputs.users) == ["u1", "u3"]
    np.testing.assert_array_equal(valid.targets, [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(valid.seen, [[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]])  # their histories
    assert split_validation(_tiny_training_set(), [])[1] is None


def _grouped_training_set(users: int = 48, groups: int = 8, size: int = 10, seed: int = 0) -> TrainingSet:
    """Items come in groups; each user had two items of one group and takes a third."""
    rng = np.random.default_rng(seed)
    history, targets = [], []
    for user in range(users):
        picks = rng.choice(size, 3, replace=False) + (user % groups) * size
        history.append(picks[:2])
        targets.append(picks[2])
    n_items = groups * size
    inputs = TowerInputs(
        np.array([f"u{u:02d}" for u in range(users)]),
        history,
        np.zeros((users, 0), np.float32),
        np.zeros((n_items, 0), np.float32),
    )
    known = np.zeros((users, n_items), dtype=bool)
    for row, had in enumerate(history):
        known[row, had] = True
        known[row, targets[row]] = True
    return TrainingSet(inputs, np.arange(users), np.array(targets), known)


def test_early_stopping_keeps_the_best_validation_epoch():
    from profile_features.evaluation.rankers.two_tower import TwoTowerConfig, score_items

    train = _grouped_training_set()
    fit, valid = split_validation(train, [f"u{u:02d}" for u in range(32, 48)])
    model = fit_two_tower(fit, False, 0, TwoTowerConfig(epochs=12, patience=3, batch_size=2), valid=valid)
    history = model.validation_recall
    best = int(np.argmax(history))
    assert model.best_epoch == best + 1 and len(history) <= min(12, best + 1 + 3)  # stopped after 3 stale epochs
    # The weights kept are that epoch's: scoring again reproduces its validation recall, not the last epoch's.
    per_user = retrieval_metrics(score_items(model, valid.inputs, False), valid.seen, valid.targets)
    assert per_user["recall@50"].mean() == pytest.approx(history[best])
