import numpy as np
import pytest

from profile_features.semantic_ids import (
    assign_codes,
    default_codes,
    fit_semantic_ids,
    latest_sid_transform,
    load_sid_transform,
    save_sid_transform,
    sid_columns,
)


def nested_vectors(seed=0, dim=16):
    """3 far-apart groups, each of 4 sub-groups, plus the shared offset sentence vectors have."""
    rng = np.random.default_rng(seed)
    groups = rng.normal(size=(3, dim)) * 10
    subs = rng.normal(size=(3, 4, dim)) * 2
    vectors, labels = [], []
    for g in range(3):
        for s in range(4):
            for _ in range(10):
                vectors.append((20 + groups[g] + subs[g, s] + rng.normal(scale=0.1, size=dim)).astype(np.float32))
                labels.append((g, s))
    return vectors, np.array(labels)


def test_level_zero_finds_the_groups_and_level_one_the_subgroups():
    vectors, labels = nested_vectors()
    transform = fit_semantic_ids(vectors, levels=2, codes=3, encoder="enc", fitted_on="t")
    codes = assign_codes(vectors, transform)
    assert codes.shape == (120, 2) and codes.dtype == np.int64
    for g in range(3):  # each group is one level-0 code, and the codes differ
        assert len(set(codes[labels[:, 0] == g, 0])) == 1
    assert len(set(codes[:, 0])) == 3
    # The (c0, c1) address is finer than c0: it splits groups into sub-groups, never mixes groups.
    pairs = {tuple(c) for c in codes}
    assert len(pairs) > 3
    for pair in pairs:
        members = (codes == pair).all(1)
        assert len(set(labels[members, 0])) == 1


def test_refit_with_the_same_seed_gives_the_same_codes_and_round_trips(tmp_path):
    vectors, _ = nested_vectors()
    a = fit_semantic_ids(vectors, 3, 4, "enc", "t", seed=5)
    b = fit_semantic_ids(list(reversed(vectors))[::-1], 3, 4, "enc", "t", seed=5)
    assert a.transform_id == b.transform_id and a.transform_id.startswith("sid-")
    np.testing.assert_array_equal(assign_codes(vectors, a), assign_codes(vectors, b))
    folder = save_sid_transform(a, tmp_path)
    loaded = load_sid_transform(folder)
    assert loaded.transform_id == a.transform_id and loaded.fitted_rows == 120 and loaded.code_sizes == (4, 4, 4)
    np.testing.assert_array_equal(assign_codes(vectors, loaded), assign_codes(vectors, a))
    found, where = latest_sid_transform(tmp_path, "enc", 3, None)
    assert found.transform_id == a.transform_id and where == folder
    assert latest_sid_transform(tmp_path, "other-encoder", 3, None) is None
    assert latest_sid_transform(tmp_path, "enc", 2, None) is None


def test_missing_vectors_get_minus_one_and_the_transform_id_is_served():
    vectors, _ = nested_vectors()
    transform = fit_semantic_ids(vectors, 2, 3, "enc", "t")
    frame = sid_columns([vectors[0], None, np.zeros(3, dtype=np.float32)], transform)
    assert list(frame.columns) == ["item_sid_0", "item_sid_1", "item_sid_transform_id"]
    assert (frame.iloc[1:, :2].to_numpy() == -1).all() and (frame.iloc[0, :2].to_numpy() >= 0).all()
    assert set(frame.item_sid_transform_id) == {transform.transform_id}


def test_default_codes_grow_with_the_catalogue_within_bounds():
    assert default_codes(1) == 2 and default_codes(1682) == 41 and default_codes(10**7) == 256
    with pytest.raises(ValueError, match="sid_codes"):
        fit_semantic_ids(nested_vectors()[0][:5], 2, 8, "enc", "t")
