import numpy as np
import pytest

from profile_features.semantic import (
    apply_transform,
    fit_transform_model,
    latest_transform,
    load_transform,
    save_transform,
)


def clustered_vectors(seed=0, per_group=30, dim=12):
    """Three tight groups that differ along two directions, plus a large shared offset
    (the anisotropy of sentence vectors)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 2)))[0].T
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]]) @ basis
    offset = np.full(dim, 10.0)
    vectors, groups = [], []
    for g, centre in enumerate(centres):
        for _ in range(per_group):
            vectors.append((offset + centre + rng.normal(scale=0.05, size=dim)).astype(np.float32))
            groups.append(g)
    return vectors, np.array(groups)


def test_pca_and_clusters_recover_known_structure():
    vectors, groups = clustered_vectors()
    transform = fit_transform_model(vectors, "profile", components=2, clusters=3, encoder="enc", fitted_on="t")
    assert transform.explained_variance_ratio.sum() > 0.99  # the shared offset is centred away
    out = apply_transform(vectors, transform, "profile")
    assert list(out.columns) == ["profile_pc_0", "profile_pc_1", "profile_cluster", "profile_transform_id"]
    assert out.profile_pc_0.dtype == np.float32 and out.profile_cluster.dtype == np.int64
    for g in range(3):  # each true group is exactly one cluster
        assert out.profile_cluster[groups == g].nunique() == 1
    assert out.profile_cluster.nunique() == 3
    np.testing.assert_allclose(out[["profile_pc_0", "profile_pc_1"]].mean(), 0.0, atol=1e-3)


def test_missing_vectors_get_nan_and_minus_one():
    vectors, _ = clustered_vectors()
    transform = fit_transform_model(vectors, "item", 2, 3, "enc", "t")
    out = apply_transform([vectors[0], None], transform, "item")
    assert np.isnan(out.item_pc_0.iloc[1]) and out.item_cluster.iloc[1] == -1 and out.item_cluster.iloc[0] >= 0


def test_fit_is_deterministic_and_round_trips(tmp_path):
    vectors, _ = clustered_vectors()
    a = fit_transform_model(vectors, "profile", 2, 3, "enc", "t")
    b = fit_transform_model(list(vectors), "profile", 2, 3, "enc", "t")
    assert a.transform_id == b.transform_id
    loaded = load_transform(save_transform(a, tmp_path))
    assert loaded.transform_id == a.transform_id and loaded.fitted_rows == 90
    np.testing.assert_array_equal(
        apply_transform(vectors, loaded, "p").to_numpy(), apply_transform(vectors, a, "p").to_numpy()
    )
    newest, folder = latest_transform(tmp_path, "profile", "enc", 2, 3)
    assert newest.transform_id == a.transform_id and folder == str(tmp_path / a.transform_id)
    assert latest_transform(tmp_path, "profile", "other-encoder", 2, 3) is None
    # A folder without meta.json (a write killed before its last file) is never picked.
    (tmp_path / "profile-0000000000000000").mkdir()
    (tmp_path / "profile-0000000000000000" / "arrays.npz").write_bytes(b"partial")
    assert latest_transform(tmp_path, "profile", "enc", 2, 3)[0].transform_id == a.transform_id


def test_too_few_rows_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot fit"):
        fit_transform_model([np.ones(4, dtype=np.float32)] * 3, "profile", 2, 5, "enc", "t")
