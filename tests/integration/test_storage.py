"""The storage layer on a real S3-compatible server (moto, started here): round trips, semantic
transforms and student checkpoints."""

from __future__ import annotations

import time

import numpy as np
import pytest

from profile_features import storage
from tests.unit.test_storage import _round_trip


def test_s3_round_trip(s3_bucket):
    _round_trip(s3_bucket)


def test_semantic_transforms_live_on_s3_and_the_newest_fitting_one_is_found(s3_bucket):
    from profile_features.semantic import cached_transform, fit_transform_model, latest_transform, save_transform

    rng = np.random.default_rng(0)
    first = fit_transform_model(rng.normal(size=(60, 12)), "profile", 3, 4, "enc", "2024-01-01", seed=0)
    second = fit_transform_model(rng.normal(size=(60, 12)), "profile", 3, 4, "enc", "2024-01-02", seed=1)
    directory = storage.join(s3_bucket, "transforms")
    save_transform(first, directory)
    time.sleep(0.01)
    folder = save_transform(second, directory)
    storage.write_bytes(storage.join(directory, "profile-interrupted", "arrays.npz"), b"")  # no meta.json
    found, found_folder = latest_transform(directory, "profile", "enc", 3, 4)
    assert found_folder == folder and found.transform_id == second.transform_id
    np.testing.assert_array_equal(cached_transform(folder).components, second.components)
    assert latest_transform(directory, "profile", "other-encoder", 3, 4) is None


def test_student_checkpoint_round_trips_through_s3(s3_bucket, tmp_path):
    import torch

    from profile_features.student.checkpoint import DataStats, checkpoint_location, load_checkpoint, save_checkpoint
    from profile_features.student.config import StudentConfig
    from profile_features.student.data import ItemIndex
    from profile_features.student.model import StudentModel

    cfg = StudentConfig.model_validate({"body": {"hidden_size": 16, "max_len": 8, "num_blocks": 1}})
    items = ItemIndex(tuple(f"i{k}" for k in range(10)))
    torch.manual_seed(0)
    model = StudentModel(len(items), 4, cfg)
    stats = DataStats(num_users=2, num_items=10, num_interactions=5, profile_dim=4, users_with_profile=2)
    root = storage.join(s3_bucket, "student", "run_date=2024-01-01")
    ckpt_id = save_checkpoint(root, model, items, stats)
    assert checkpoint_location(root) == storage.join(root, "versions", ckpt_id)
    loaded = load_checkpoint(root)
    assert loaded.checkpoint_id == ckpt_id and loaded.path == checkpoint_location(root)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    # A second save publishes a new version; the pointer moves, the old version stays loadable.
    torch.manual_seed(1)
    other = StudentModel(len(items), 4, cfg)
    other_id = save_checkpoint(root, other, items, stats)
    assert other_id != ckpt_id and load_checkpoint(root).checkpoint_id == other_id
    assert load_checkpoint(storage.join(root, "versions", ckpt_id)).checkpoint_id == ckpt_id
    with pytest.raises(FileNotFoundError, match="no student checkpoint"):
        checkpoint_location(storage.join(s3_bucket, "student", "nothing-here"))
