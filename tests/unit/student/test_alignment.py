"""Served student vectors keep their predecessor's basis (student/alignment.py): a known rotation is
recovered, a retrained student's item vectors land near the previous checkpoint's, and every dot
product (the student's scores) is unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profile_features.student.alignment import procrustes
from profile_features.student.checkpoint import load_checkpoint
from profile_features.student.scoring import score_items, score_users
from profile_features.student.train import train_from_frames


def test_procrustes_recovers_a_known_rotation():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(100, 16))
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    np.testing.assert_allclose(procrustes(source, source @ rotation), rotation, atol=1e-8)


def _served(path, inter):
    model = load_checkpoint(path)
    histories = inter.sort_values("timestamp").groupby("user_id").item_id.agg(list).reset_index(name="item_ids")
    users = np.stack(score_users(histories, model).student_embedding)
    items = score_items(pd.DataFrame({"item_id": list(model.item_index.item_ids)}), model)
    return model, users, np.stack(items.student_item_embedding), items.student_item_bias.to_numpy()


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def test_a_retrained_student_serves_vectors_in_its_predecessors_basis(tmp_path, make_config):
    from tests.support.student import cyclic_interactions

    inter = cyclic_interactions(num_users=60, length=20, num_items=40, seed=1)
    train_from_frames(make_config("train.epochs=12", "train.seed=0"), inter, None, tmp_path / "first")
    retrain = make_config("train.epochs=12", "train.seed=1")
    train_from_frames(retrain, inter, None, tmp_path / "raw")  # the same training, not aligned
    train_from_frames(retrain, inter, None, tmp_path / "second", align_to=tmp_path / "first")

    first, _, first_items, _ = _served(tmp_path / "first", inter)
    raw, raw_users, raw_items, raw_bias = _served(tmp_path / "raw", inter)
    second, users, items, bias = _served(tmp_path / "second", inter)
    rotation = second.output_rotation
    assert first.output_rotation is None and raw.output_rotation is None
    assert second.stats.extra["aligned_to"] == first.checkpoint_id
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(len(rotation)), atol=1e-5)
    # Each item's served vector now points where the previous checkpoint's did; unaligned, it does not.
    aligned, unaligned = _mean_cosine(items, first_items), _mean_cosine(raw_items, first_items)
    assert aligned > 0.5 and aligned > unaligned + 0.3, (aligned, unaligned)
    # The scores are the same numbers: user . item + bias, with and without the rotation.
    np.testing.assert_allclose(users @ items.T + bias, raw_users @ raw_items.T + raw_bias, rtol=1e-4, atol=1e-4)
