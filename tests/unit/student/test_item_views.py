"""Dual-view and semantic-ID item representations, on data where only an item's content tells its group.

Items belong to 4 groups; each user stays in one group and picks its items in random order, so the
next item's group is known and the item within it is not. A quarter of each group's items never
appear in training. Their group shows only in their content (text vector near the group's centre,
or the group as the first semantic-ID code): a student that reads content must rank a user's own
group's unseen items above the other groups'; an ID-only student has nothing to tell them apart by.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from profile_features.item_content import read_item_content
from profile_features.student.checkpoint import load_checkpoint, save_checkpoint
from profile_features.student.data import ItemIndex, pad_left
from profile_features.student.items import item_features_from_frames
from profile_features.student.neighbours import profile_neighbours
from profile_features.student.scoring import score_items, score_users
from profile_features.student.training import _crop, build_training_data, fit

GROUPS, PER_GROUP, UNSEEN_PER_GROUP, DIM = 4, 15, 4, 16


def _group(item: str) -> int:
    return int(item[1:]) // PER_GROUP


@pytest.fixture(scope="module")
def content_world():
    rng = np.random.default_rng(0)
    items = [f"i{k}" for k in range(GROUPS * PER_GROUP)]
    unseen = {f"i{g * PER_GROUP + k}" for g in range(GROUPS) for k in range(UNSEEN_PER_GROUP)}
    centres = rng.normal(size=(GROUPS, DIM))
    common = rng.normal(size=DIM) * 4  # sentence vectors share a large common direction
    text = pd.DataFrame(
        {
            "item_id": items,
            "item_text_embedding": [
                (common + 3 * centres[_group(i)] + rng.normal(size=DIM)).astype(np.float32) for i in items
            ],
        }
    )
    codes = pd.DataFrame(
        {"item_id": items, "item_sid_0": [_group(i) for i in items], "item_sid_1": rng.integers(0, 3, len(items))}
    )
    histories = {}
    for u in range(96):
        pool = [i for i in items if _group(i) == u % GROUPS and i not in unseen]
        histories[f"u{u}"] = list(rng.choice(pool, size=20))
    index = ItemIndex.from_items(items)  # the catalogue: unseen items included
    features = item_features_from_frames(index, text, codes, (GROUPS, 3), "test-encoder", "sid-test")
    return histories, index, features, sorted(unseen), text, codes


def _tiny(make_config, *overrides):
    return make_config("train.epochs=25", "distill.enabled=false", *overrides)


def _unseen_auc(model, histories, index, unseen) -> float:
    """P(an unseen item of the user's group outscores an unseen item of another group), ties half."""
    users = sorted(histories)
    with torch.no_grad():
        scores = model.score_items(pad_left([index.encode(histories[u]) for u in users], model.cfg.body.max_len))
    cols = torch.as_tensor(index.encode(unseen)) - 1
    scores = scores[:, cols].numpy()
    groups = np.array([_group(i) for i in unseen])
    aucs = []
    for row, user in enumerate(users):
        own = groups == int(user[1:]) % GROUPS
        diff = scores[row, own][:, None] - scores[row, ~own][None, :]
        aucs.append(((diff > 0) + 0.5 * (diff == 0)).mean())
    return float(np.mean(aucs))


@pytest.mark.parametrize(
    "views",
    [
        ("items.text=true", "items.fusion=sum"),
        ("items.text=true", "items.fusion=gated"),
        ("items.text=true", "items.fusion=concat"),
        ("items.sid=true",),
        ("items.text=true", "items.sid=true", "items.adapter_hidden=32"),
    ],
)
def test_content_views_rank_unseen_items_of_the_users_group(content_world, make_config, views):
    histories, index, features, unseen, _, _ = content_world
    data = build_training_data(histories, index, None, features)
    result = fit(_tiny(make_config, *views, "items.id_dropout=0.3"), data, None, log=None)
    assert not result.model.items.seen[torch.as_tensor(index.encode(unseen))].any()
    assert _unseen_auc(result.model, histories, index, unseen) > 0.95


def test_an_id_only_student_cannot_tell_unseen_items_apart(content_world, make_config):
    histories, index, features, unseen, _, _ = content_world
    data = build_training_data(histories, index, None, features)
    result = fit(_tiny(make_config, "items.text=false"), data, None, log=None)
    assert result.model.items.text_dim == 0
    assert _unseen_auc(result.model, histories, index, unseen) == pytest.approx(0.5)


def test_text_auto_reads_content_when_it_is_given(content_world, make_config):
    histories, index, features, _, _, _ = content_world
    cfg = _tiny(make_config, "train.epochs=1")
    assert cfg.items.text == "auto"
    with_content = fit(cfg, build_training_data(histories, index, None, features), None, log=None)
    without = fit(cfg, build_training_data(histories, index), None, log=None)
    assert with_content.model.items.text_dim == DIM and without.model.items.text_dim == 0
    untied = fit(
        _tiny(make_config, "train.epochs=1", "head.tied=false"),
        build_training_data(histories, index, None, features),
        None,
        log=None,
    )
    assert untied.model.items.text_dim == 0  # an untied head cannot score items by their content
    # ... so the pipeline does not read the item tables for it (here: a data folder with none would raise).
    assert read_item_content("/nonexistent-data-dir", "2024-01-01", untied.model.cfg.content_views) is None
    with pytest.raises(FileNotFoundError, match="item_text_embeddings"):
        read_item_content("/nonexistent-data-dir", "2024-01-01", cfg.content_views)


def test_semantic_views_need_the_items_content(content_world, make_config):
    histories, index, _, _, _, _ = content_world
    with pytest.raises(ValueError, match="no item text embeddings"):
        fit(_tiny(make_config, "items.text=true"), build_training_data(histories, index), None, log=None)
    with pytest.raises(ValueError, match="head.tied"):
        make_config("items.sid=true", "head.tied=false")


def test_checkpoint_and_item_scoring_reproduce_the_students_logits(content_world, make_config, tmp_path):
    """Round trip keeps the frozen content; score_items' vector and bias give the model's own logit, for
    unseen items of the index and for new items known only by their content."""
    histories, index, features, unseen, text, codes = content_world
    data = build_training_data(histories, index, None, features)
    cfg = _tiny(make_config, "items.text=true", "items.sid=true", "items.fusion=gated", "items.id_dropout=0.3")
    model = fit(cfg, data, None, log=None).model
    save_checkpoint(tmp_path / "ckpt", model, index, _stats(), features.provenance)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.item_features["sid_transform_id"] == "sid-test" and loaded.item_features["text_dim"] == DIM
    users = pd.DataFrame({"user_id": ["u0", "u1"], "item_ids": [histories["u0"], histories["u1"]]})
    states = np.stack(score_users(users, loaded).student_embedding)
    with torch.no_grad():
        logits = loaded.model.score_items(pad_left([index.encode(histories[u]) for u in ("u0", "u1")], 20)).numpy()
    scored = score_items(pd.DataFrame({"item_id": list(index.item_ids)}), loaded)
    assert scored.student_item_seen.sum() == len(index) - len(unseen)
    rebuilt = states @ np.stack(scored.student_item_embedding).T + scored.student_item_bias.to_numpy()
    np.testing.assert_allclose(rebuilt, logits, rtol=1e-4, atol=1e-4)
    # A new item (not in the index) with an unseen item's content scores exactly as that item.
    new = text[text.item_id.isin(unseen[:3])].merge(codes, on="item_id").assign(item_id=["n0", "n1", "n2"])
    fresh = score_items(new, loaded)
    twins = scored.set_index("item_id").loc[unseen[:3]]
    np.testing.assert_allclose(
        np.stack(fresh.student_item_embedding), np.stack(twins.student_item_embedding), atol=1e-5
    )
    np.testing.assert_allclose(fresh.student_item_bias, twins.student_item_bias, atol=1e-6)
    assert not fresh.student_item_seen.any()
    # Without content a new item cannot be represented: null, not a made-up vector.
    blank = score_items(pd.DataFrame({"item_id": ["n9"], "item_text_embedding": [None], "item_sid_0": [None]}), loaded)
    assert blank.student_item_embedding.iloc[0] is None and np.isnan(blank.student_item_bias.iloc[0])


def _stats():
    from profile_features.student.checkpoint import DataStats

    return DataStats(num_users=1, num_items=1, num_interactions=1, profile_dim=0, users_with_profile=0)


def test_profile_neighbours_are_found_by_centred_profiles():
    rng = np.random.default_rng(0)
    common = rng.normal(size=8) * 10
    groups = rng.normal(size=(3, 8))
    profiles = np.stack([common + groups[i % 3] + 0.05 * rng.normal(size=8) for i in range(30)]).astype(np.float32)
    has = np.ones(30, dtype=bool)
    has[5] = False
    nbrs = profile_neighbours(profiles, has, 4)
    assert (nbrs[5] == -1).all()
    for row in np.flatnonzero(has):
        assert row not in nbrs[row] and 5 not in nbrs[row]
        assert all(n % 3 == row % 3 for n in nbrs[row]), (row, nbrs[row])


def test_neighbour_distillation_pulls_users_toward_their_profile_neighbours(content_world, make_config):
    histories, index, features, _, _, _ = content_world
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(GROUPS, 8))
    profiles = {u: (5 + directions[int(u[1:]) % GROUPS] + 0.1 * rng.normal(size=8)) for u in histories}
    data = build_training_data(histories, index, profiles, features)
    cfg = _tiny(make_config, "neighbours.enabled=true", "neighbours.weight=1.0", "neighbours.neighbours=5")
    result = fit(cfg, data, None, log=None)
    losses = [row["neighbour"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0], losses
    # Off, the term is not computed at all.
    plain = fit(_tiny(make_config, "train.epochs=2"), data, None, log=None)
    assert all(row["neighbour"] == 0.0 for row in plain.history)


def test_crops_keep_the_newest_items_and_span_short_to_full_lengths():
    rng = np.random.default_rng(0)
    sequence = list(range(1, 41))
    lengths = []
    for _ in range(2000):
        crop = _crop(sequence, rng)
        assert crop == sequence[-len(crop) :] and len(crop) >= 2
        lengths.append(len(crop) - 1)
    assert min(lengths) == 1 and max(lengths) == 39
    assert np.median(lengths) < 10  # log-uniform: short inputs are common
    assert _crop([3, 4], rng) == [3, 4]


def test_pca_adapter_starts_with_the_texts_geometry(content_world):
    """Before training, a PCA-initialised text view keeps the centred texts' inner products (H >= D here)."""
    from profile_features.student.config import ItemViewsConfig
    from profile_features.student.items import ItemEncoder

    _, index, features, _, _, _ = content_world
    encoder = ItemEncoder(len(index), 32, ItemViewsConfig(id=False, text=True, adapter_init="pca"), DIM)
    encoder.set_features(features)
    weight = encoder.adapter.weight.detach()
    torch.testing.assert_close(weight[:DIM] @ weight[:DIM].T, torch.eye(DIM), atol=1e-5, rtol=0)
    with torch.no_grad():
        vectors = encoder.table()[1:]
    texts = encoder.text[1:] / encoder.text_scale
    torch.testing.assert_close(vectors @ vectors.T, texts @ texts.T, atol=1e-4, rtol=1e-4)
    assert float((texts.norm(dim=1) ** 2).mean()) == pytest.approx(1.0, rel=1e-4)  # unit RMS, like an ID row
