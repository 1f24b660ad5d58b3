import numpy as np
import pytest
import torch
import torch.nn.functional as F

from profile_features.student.config import load_student_config
from profile_features.student.data import pad_left
from profile_features.student.evaluation import (
    evaluate,
    metrics_from_ranks,
    per_user_metrics,
    ranks_from_scores,
    target_ranks,
    targets_ranks,
)
from profile_features.student.losses import distill_loss
from profile_features.student.training import build_training_data, epoch_batch_size, fit


def test_determined_next_item_is_ranked_first(trained, cyclic_data):
    result, _ = trained
    _, seqs, index, _ = cyclic_data
    users = sorted(seqs)
    inputs = [index.encode(seqs[u][:-1]) for u in users]
    targets = index.encode([seqs[u][-1] for u in users])
    ranks = target_ranks(result.model, inputs, targets)
    assert (ranks == 0).all(), ranks
    assert evaluate(result.model, inputs, targets).ndcg_at_10 == pytest.approx(1.0)


def test_ranks_count_higher_items_and_half_the_ties_within_the_candidates(trained, cyclic_data):
    scores = np.array([[5.0, 3.0, 3.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    targets = np.array([2, 1])  # item indices 1..N
    assert ranks_from_scores(scores, targets).tolist() == [1.5, 3.0]
    pool = np.array([False, True, True, True])  # item 1 is not ranked; item 1 as a target is refused
    assert ranks_from_scores(scores, np.array([2, 2]), pool).tolist() == [0.5, 2.0]
    with pytest.raises(ValueError, match="candidates"):
        ranks_from_scores(scores, targets, pool)
    # Through the model: a target's rank in a pool is its rank among all items, less the outscoring non-members.
    result, _ = trained
    _, seqs, index, _ = cyclic_data
    users = sorted(seqs)
    inputs, targets = [index.encode(seqs[u][:-3]) for u in users], index.encode([seqs[u][-1] for u in users])
    everything = target_ranks(result.model, inputs, targets)
    pool = np.zeros(len(index), dtype=bool)
    pool[np.asarray(targets) - 1] = True
    pool[::2] = True
    in_pool = target_ranks(result.model, inputs, targets, candidates=pool)
    assert (in_pool <= everything).all() and (in_pool < everything).any()
    assert (in_pool < pool.sum()).all()


def test_several_targets_per_user_are_ranked_from_one_history_and_averaged_per_user(trained, cyclic_data):
    result, _ = trained
    _, seqs, index, _ = cyclic_data
    users = sorted(seqs)
    inputs = [index.encode(seqs[u][:-3]) for u in users]
    first, second = index.encode([seqs[u][-3] for u in users]), index.encode([seqs[u][-2] for u in users])
    # every user has the first target, every other user a second one: the rest is padding (NaN)
    lists = [[a, b] if i % 2 else [a] for i, (a, b) in enumerate(zip(first, second))]
    ranks = targets_ranks(result.model, inputs, lists)
    assert ranks.shape == (len(users), 2)
    assert np.array_equal(ranks[:, 0], target_ranks(result.model, inputs, first))
    odd = np.arange(len(users)) % 2 == 1
    assert np.array_equal(
        ranks[odd, 1],
        target_ranks(result.model, [inputs[i] for i in np.flatnonzero(odd)], [second[i] for i in np.flatnonzero(odd)]),
    )
    assert np.isnan(ranks[~odd, 1]).all()
    # Known answers: NDCG the mean over a user's targets, recall the share in the top 10, HR any, MRR the best.
    per_user = per_user_metrics(np.array([[0.0, 20.0], [5.0, np.nan], [30.0, 40.0]]))
    assert per_user["ndcg@10"] == pytest.approx([0.5, 1 / np.log2(7), 0.0])
    assert per_user["recall@10"].tolist() == [0.5, 1.0, 0.0] and per_user["hr@10"].tolist() == [1.0, 1.0, 0.0]
    assert per_user["mrr"] == pytest.approx([1.0, 1 / 6, 1 / 31])
    # One target per user is the one-column case.
    one = np.array([0.0, 3.0, 20.0])
    assert metrics_from_ranks(one) == metrics_from_ranks(one[:, None])


def test_distillation_loss_falls(trained):
    result, _ = trained
    distil = [row["distil"] for row in result.history]
    assert distil[-1] < 0.5 * distil[0]
    assert all(row["distilling"] == 1.0 for row in result.history)


def test_published_variant_trains_and_switches_phase(cyclic_data, make_config):
    _, seqs, index, profiles = cyclic_data
    data = build_training_data({u: s[:-1] for u, s in seqs.items()}, index, profiles)
    cfg = make_config(
        "distill.direction=profile_to_hidden",
        "distill.target_transform=none",
        "distill.loss=mse",
        "distill.beta=dynamic",
        "distill.distill_fraction=0.5",
        "train.epochs=10",
    )
    result = fit(cfg, data, None, log=None)
    phases = [row["distilling"] for row in result.history]
    assert phases == [1.0] * 5 + [0.0] * 5
    # Dynamic beta makes alpha * beta * L_distil == alpha * L_rec in every distillation batch.
    assert all(row["beta"] > 0 for row in result.history[:5])
    assert np.isfinite([row["rec"] for row in result.history]).all()


@pytest.mark.parametrize("kind", ["mean", "last", "exp", "each"])
def test_pooling_and_padding_width_do_not_change_outputs(trained, kind):
    result, _ = trained
    model = result.model.eval()
    seqs = [[1, 2, 3], [5]]
    narrow, wide = pad_left(seqs, 20), pad_left(seqs, 20, width=20)
    model.pooling.cfg = model.pooling.cfg.model_copy(update={"kind": kind})
    try:
        with torch.no_grad():
            a, b = model.encode(narrow), model.encode(wide)
        torch.testing.assert_close(a["state"], b["state"])
        torch.testing.assert_close(a["pooled"], b["pooled"])
        assert a["profile"].shape == (2, 8)
    finally:
        model.pooling.cfg = model.pooling.cfg.model_copy(update={"kind": "mean"})


def test_per_position_distillation_teaches_every_prefix_the_profile(cyclic_data, make_config):
    """`each`: every prefix state, not only the pooled one, learns its user's profile.

    Here a user's profile group is a function of where the user enters the cycle, which any
    item with its position reveals, so the state after 3 items must point to the right group.
    """
    _, seqs, index, _ = cyclic_data
    users = sorted(seqs)
    rng = np.random.default_rng(1)
    groups = rng.normal(size=(4, 8)) * 2
    group_of = {u: int(seqs[u][0][1:]) % 4 for u in users}
    profiles = {u: (3.0 + groups[group_of[u]] + 0.1 * rng.normal(size=8)).astype(np.float32) for u in users}
    data = build_training_data({u: s[:-1] for u, s in seqs.items()}, index, profiles)
    cfg = make_config("pooling.kind=each", "distill.alpha=0.4", "distill.distill_fraction=1.0", "train.epochs=30")
    result = fit(cfg, data, None, log=None)
    distil = [row["distil"] for row in result.history]
    assert distil[-1] < 0.5 * distil[0]
    model = result.model.eval()
    # The training inputs (newest 20 items); the state after their 3rd item sees only 3 items.
    inputs = pad_left([s[-21:-1] for s in data.sequences], 20)
    target = model.target_transform(torch.as_tensor(data.profiles))
    with torch.no_grad():
        pred = model.distill_head.pair(model.layers(inputs)[-1][:, 2], target)[0]
    sims = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T
    group = torch.as_tensor([group_of[u] for u in users])
    hit = (group[sims.argmax(1)] == group).float().mean()
    assert hit > 0.9, hit


def test_distill_loss_rows_share_a_users_target():
    target = torch.eye(3)
    pred = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 0, 5.0]])
    rows = torch.tensor([0, 0, 2])
    assert float(distill_loss(pred / 5, target, "mse", rows=rows)) == pytest.approx(0.0)
    assert float(distill_loss(pred, target, "cosine", rows=rows)) == pytest.approx(0.0, abs=1e-6)
    right = float(distill_loss(pred, target, "infonce", 0.1, rows))
    wrong = float(distill_loss(pred, target, "infonce", 0.1, torch.tensor([1, 1, 0])))
    assert right < 1e-3 and wrong > 5


def test_plain_student_gets_a_fitted_profile_readout(cyclic_data, make_config):
    _, seqs, index, profiles = cyclic_data
    data = build_training_data({u: s[:-1] for u, s in seqs.items()}, index, profiles)
    result = fit(make_config("distill.enabled=false", "train.epochs=3"), data, None, log=None)
    assert all(np.isnan(row["distil"]) or row["distil"] == 0.0 for row in result.history)
    with torch.no_grad():
        out = result.model.encode(pad_left([data.sequences[0]], 20))
    assert out["profile"].shape == (1, 8) and torch.isfinite(out["profile"]).all()


def test_metrics_from_ranks():
    m = metrics_from_ranks(np.array([0.0, 1.0, 10.0, 100.0]))
    assert m.hr_at_10 == m.recall_at_10 == 0.5
    assert m.ndcg_at_10 == pytest.approx((1.0 + 1 / np.log2(3)) / 4)
    assert m.mrr == pytest.approx((1 + 1 / 2 + 1 / 11 + 1 / 101) / 4)


def test_config_is_strict_and_frozen(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("distill:\n  alpah: 0.3\n")
    with pytest.raises(Exception):
        load_student_config(path)
    cfg = load_student_config(None, ["distill.alpha=0.25", "train.patience=null"])
    assert cfg.distill.alpha == 0.25 and cfg.train.patience is None
    with pytest.raises(Exception):
        cfg.distill.alpha = 0.5


def test_patience_counts_when_distillation_spans_all_epochs(cyclic_data, make_config):
    _, seqs, index, profiles = cyclic_data
    data = build_training_data({u: s[:-2] for u, s in seqs.items()}, index, profiles)
    users = sorted(seqs)
    # A validation target nobody can predict: the metric never improves after the first eval.
    valid = ([index.encode(seqs[u][:-2]) for u in users], index.encode([seqs[u][-1] for u in users]))
    cfg = make_config("train.epochs=30", "train.eval_every=1", "train.patience=2", "distill.distill_fraction=1.0")
    result = fit(cfg, data, valid, log=None)
    assert len(result.history) < 30


def test_a_stalled_distillation_phase_hands_over_to_next_item_loss_then_stops(cyclic_data, make_config):
    """Two phases, each as long as it helps: validation that never improves ends the distillation
    phase after `patience` evaluations (not at 50% of 30 epochs), then L_rec alone for `patience` more."""
    _, seqs, index, profiles = cyclic_data
    data = build_training_data({u: s[:-2] for u, s in seqs.items()}, index, profiles)
    users = sorted(seqs)
    valid = ([index.encode(seqs[u][:-2]) for u in users], index.encode([seqs[u][-1] for u in users]))
    cfg = make_config(
        "train.epochs=30",
        "train.eval_every=1",
        "train.patience=2",
        "train.min_epochs=1",
        "train.min_steps_per_epoch=1",  # one step an epoch: the stall is in epochs, as the docstring counts
        "distill.distill_fraction=0.5",
    )
    result = fit(cfg, data, valid, log=None)
    phases = [row["distilling"] for row in result.history]
    switch = result.distill_until
    assert 1 < switch < 15 and phases == [1.0] * switch + [0.0] * (len(phases) - switch)
    assert switch < len(phases) <= switch + 2 + 1  # patience afresh in the second phase, then it stops
    replay = fit(cfg, data, None, log=None, stop_after=len(phases), distill_until=switch)
    assert [row["distilling"] for row in replay.history] == phases


def _popularity_only_data(make_config, seed: int = 0):
    """Users draw items from a skewed popularity, independent of their history: nothing to learn
    beyond popularity, so the untrained start is the best model."""
    from profile_features.student.data import ItemIndex

    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, 31)
    probs /= probs.sum()
    seqs = {f"u{u}": [f"i{i}" for i in rng.choice(30, size=6, p=probs)] for u in range(120)}
    index = ItemIndex.from_items([i for s in seqs.values() for i in s])
    train = {u: s[:-1] for u, s in seqs.items()}
    users = sorted(train)
    valid = ([index.encode(train[u]) for u in users], index.encode([seqs[u][-1] for u in users]))
    return build_training_data(train, index, None), valid


def test_a_student_that_never_beats_most_popular_on_validation_ranks_by_popularity(make_config):
    from profile_features.student.training import item_counts, popularity_metrics

    data, valid = _popularity_only_data(make_config, seed=1)
    # Six one-step epochs keep the model near its start: more steps can fit the held-out draws by chance.
    cfg = make_config("distill.enabled=false", "train.epochs=6", "train.eval_every=1", "train.min_steps_per_epoch=1")
    result = fit(cfg, data, valid, log=None)
    assert result.ranks_by_popularity and float(result.model.head.scale) == 0.0
    # The served ranking is exactly most-popular's, counting the held-out items too (the newest ones).
    everything = item_counts(data) + np.bincount(np.asarray(valid[1]) - 1, minlength=len(data.item_index))
    served = evaluate(result.model, *valid).as_dict()
    assert served["ndcg@10"] == pytest.approx(popularity_metrics(everything, valid[1])["ndcg@10"], abs=1e-9)
    assert result.best_valid == result.popularity_valid == popularity_metrics(item_counts(data), valid[1])


def test_a_student_that_learns_keeps_its_own_ranking(cyclic_data, make_config):
    _, seqs, index, _ = cyclic_data
    train = {u: s[:-1] for u, s in seqs.items()}
    users = sorted(train)
    valid = ([index.encode(train[u]) for u in users], index.encode([seqs[u][-1] for u in users]))
    result = fit(
        make_config("distill.enabled=false", "train.eval_every=5"), build_training_data(train, index), valid, log=None
    )
    assert not result.ranks_by_popularity and float(result.model.head.scale) == 1.0
    assert result.best_valid["ndcg@10"] > result.popularity_valid["ndcg@10"] + 0.5
    kept = [row["valid_ndcg@10"] for row in result.history if "valid_ndcg@10" in row]
    assert result.best_valid["ndcg@10"] == pytest.approx(max(kept))


def test_validated_training_keeps_short_users_and_reports_most_popular(tmp_path, make_config):
    import pandas as pd

    from profile_features.student.train import train_from_frames

    rows = [(f"u{u}", f"i{(u + t) % 12}", t) for u in range(40) for t in range(6)]
    rows += [("short", "i1", 0), ("short", "i2", 1)]  # nothing after the validation cutoff: trains only
    result = train_from_frames(
        make_config("distill.enabled=false", "train.epochs=3"),
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]),
        None,
        tmp_path / "ckpt",
        validate=True,
    )
    assert result["users"] == 41 and result["guard"]["validation_users"] == 40
    assert result["best_valid"]["users"] == result["popularity_valid"]["users"] == 40
    assert set(result) >= {"variant", "guard", "best_epoch", "popularity_valid", "ranks_by_popularity"}


def _items(num_items: int, hidden: int):
    from profile_features.student.config import ItemViewsConfig
    from profile_features.student.items import ItemEncoder

    return ItemEncoder(num_items, hidden, ItemViewsConfig())


def test_sampled_softmax_is_the_full_softmax_when_the_catalogue_fits():
    from profile_features.student.heads import NextItemHead
    from profile_features.student.losses import next_item_loss, sampled_next_item_loss

    torch.manual_seed(0)
    head = NextItemHead(_items(10, 4), 10, 4, tied=True)
    states, targets = torch.randn(6, 4), torch.randint(1, 11, (6,))
    full = next_item_loss(head(states), targets)
    assert sampled_next_item_loss(head, states, targets, negatives=10) == full
    assert sampled_next_item_loss(head, states, targets, negatives=None) == full


def test_sampled_softmax_estimates_the_full_loss_and_masks_accidental_hits():
    from profile_features.student.heads import NextItemHead
    from profile_features.student.losses import next_item_loss, sampled_next_item_loss

    torch.manual_seed(0)
    head = NextItemHead(_items(2000, 16), 2000, 16, tied=True)
    states, targets = 0.3 * torch.randn(64, 16), torch.randint(1, 2001, (64,))  # logits spread ~1.2
    full = float(next_item_loss(head(states), targets))
    estimates = [float(sampled_next_item_loss(head, states, targets, negatives=200)) for _ in range(50)]
    # The log(N/K) correction puts it on the full scale (without it the mean would be log(N/K) = 2.3 lower).
    assert abs(np.mean(estimates) - full) < 0.03 * full
    # A sampled item that is the row's own target is masked: with one negative over two items, the
    # loss is 0 exactly when the draw hit the target, and the corrected two-way CE otherwise.
    pair = NextItemHead(_items(2, 2), 2, 2, tied=True)
    state, target = torch.randn(1, 2), torch.tensor([1])
    logits = pair(state)[0]
    corrected = float(-F.log_softmax(torch.stack([logits[0], logits[1] + np.log(2)]), 0)[0])
    hits = 0
    for seed in range(20):
        torch.manual_seed(seed)
        drawn = int(torch.randint(1, 3, (1,)))
        torch.manual_seed(seed)
        loss = float(sampled_next_item_loss(pair, state, target, negatives=1))
        hits += drawn == 1
        assert loss == pytest.approx(0.0 if drawn == 1 else corrected, abs=1e-6)
    assert 0 < hits < 20


def test_sampled_softmax_training_ranks_the_determined_next_item_first(make_config):
    """A cycle over 400 items trained against 64 sampled items per batch learns it as the full softmax does
    (here: full 0.81 first / 0.94 top-10; random 0.0025 / 0.025)."""
    from profile_features.student.data import ItemIndex, user_sequences

    num_items, rng = 400, np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{(start + t) % num_items}", t)
        for u, start in enumerate(rng.integers(num_items, size=64))
        for t in range(30)
    ]
    import pandas as pd

    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    seqs, index = user_sequences(inter), ItemIndex.from_items(inter["item_id"])
    torch.manual_seed(0)
    data = build_training_data({u: s[:-1] for u, s in seqs.items()}, index, None)
    result = fit(make_config("head.negatives=64", "distill.enabled=false", "train.epochs=60"), data, None, log=None)
    users = sorted(seqs)
    ranks = target_ranks(
        result.model, [index.encode(seqs[u][:-1]) for u in users], index.encode([seqs[u][-1] for u in users])
    )
    assert (ranks == 0).mean() >= 0.7 and (ranks < 10).mean() >= 0.9, ranks


def test_small_data_gets_enough_optimiser_steps_per_epoch():
    """An epoch has at least `min_steps_per_epoch` steps on small data; large data keeps its batch size."""
    tc = load_student_config(None).train
    assert (tc.batch_size, tc.min_steps_per_epoch) == (128, 20)
    assert epoch_batch_size(tc, 657) == 33  # ml-100k's training users: 20 steps, not 5
    assert epoch_batch_size(tc, 1_000_000) == 128
    assert epoch_batch_size(tc, 30) == 8  # never below 8 users a step
    assert epoch_batch_size(tc.model_copy(update={"batch_size": 4}), 10_000) == 4
