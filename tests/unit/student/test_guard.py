"""The deployment guard (student/guard.py): validation after a cutoff in time, the non-inferiority
rule, the fallback chain, and what the checkpoint and the served rows say shipped."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from profile_features.student.checkpoint import load_checkpoint
from profile_features.student.config import GuardConfig
from profile_features.student.data import ItemIndex, user_timelines
from profile_features.student.evaluation import blended_target_ranks
from profile_features.student.guard import (
    CONFIGURED,
    PLAIN,
    POPULARITY,
    SHORT_HISTORY,
    WITHOUT_CONTENT,
    Replay,
    _add_trending_prior,
    _with_trending_prior,
    checks_short_slice,
    choose_variant,
    paired_check,
    per_user_ndcg,
    replay_fit,
    variant_chain,
)
from profile_features.student.items import ItemContent
from profile_features.student.scoring import score_items, score_users
from profile_features.student.sources import BeforeCutoff, Cached, after_cutoff_targets, interaction_time_quantile
from profile_features.student.train import train_from_frames
from profile_features.student.training import FitResult, build_training_data, fit


def _timed_data():
    rows = [("a", "i1", 10), ("a", "i2", 20), ("a", "i3", 30), ("b", "i2", 5), ("b", "i4", 40)]
    rows += [("c", "i1", 50), ("c", "i3", 60), ("d", "i4", 1), ("d", "i1", 2)]
    timelines = user_timelines(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    index = ItemIndex.from_items(["i1", "i2", "i3", "i4"])
    histories = {u: items for u, (items, _) in timelines.items()}
    times = {u: when for u, (_, when) in timelines.items()}
    return build_training_data(histories, index, None, None, times), index


def test_validation_cutoff_splits_every_user_in_time():
    data, index = _timed_data()
    assert interaction_time_quantile(data, 0.5) == 20  # the median of the 9 times (1 2 5 10 20 30 40 50 60)
    targets = after_cutoff_targets(data, 25)
    # a: i1 i2 | i3; b: i2 | i4; c has nothing before 25, d nothing after: neither is a validation user.
    assert targets.users == ["a", "b"] and targets.eligible == 2
    assert targets.inputs == [index.encode(["i1", "i2"]), index.encode(["i2"])]
    assert targets.targets == [index.encode(["i3"]), index.encode(["i4"])]
    early = {u: s for chunk in BeforeCutoff(data, 25).chunks() for u, s in zip(chunk.users, chunk.sequences)}
    assert early == {"a": index.encode(["i1", "i2"]), "b": index.encode(["i2"]), "d": index.encode(["i4", "i1"])}
    two = after_cutoff_targets(data, 15, targets_per_user=2)
    assert two.targets[two.users.index("a")] == index.encode(["i2", "i3"])
    inputs, flat, owner = two.pairs()
    assert len(inputs) == len(flat) == len(owner) == sum(len(t) for t in two.targets)


def test_a_source_without_times_is_refused_with_the_column_named():
    data, index = _timed_data()
    untimed = build_training_data({"a": ["i1", "i2"]}, index)
    with pytest.raises(ValueError, match="item_times"):
        after_cutoff_targets(untimed, 10)
    assert after_cutoff_targets(data, 10).users  # the timed one is fine


def test_cached_source_reads_a_small_source_once_and_streams_a_large_one():
    data, _ = _timed_data()

    class Counting:
        item_index, item_features, profile_dim, passes = data.item_index, None, 0, 0

        def chunks(self, rng=None):
            Counting.passes += 1
            yield from data.chunks(rng)

    small = Cached(Counting(), max_interactions=100)
    for _ in range(3):
        assert sum(len(s) for c in small.chunks() for s in c.sequences) == 9
    assert small.in_memory and Counting.passes == 1
    large = Cached(Counting(), max_interactions=5)
    list(large.chunks())
    assert not large.in_memory and Counting.passes == 3  # one (aborted) read to size it, one per pass


def test_non_inferiority_passes_ties_and_fails_harm_and_no_power():
    guard = GuardConfig(confidence=0.9, margin=0.05, min_users=20)
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, size=400)
    assert paired_check(base, base, "b", guard).passed  # identical: bounded at zero harm
    assert not paired_check(base * 0.7, base, "b", guard).passed  # 30% worse
    assert not paired_check(base[:10], base[:10], "b", guard).passed  # too few users to tell
    # Equal on average but very noisy on 40 users: harm of 5% cannot be excluded, so it fails...
    noisy = base[:40] + rng.normal(0, 0.5, size=40)
    check = paired_check(noisy - noisy.mean() + base[:40].mean(), base[:40], "b", guard)
    assert not check.passed and check.lower_bound < check.threshold
    # ...and the same noise over 40,000 users is resolved.
    big = rng.uniform(0, 1, size=40_000)
    assert paired_check(big + rng.normal(0, 0.5, size=40_000) * 0.1, big, "b", guard).passed
    better = paired_check(base + 0.1, base, "b", guard)
    assert better.passed and better.difference == pytest.approx(0.1)


def _choose(scores: dict, popular: np.ndarray, short: np.ndarray | None = None, guard: GuardConfig = GuardConfig()):
    asked, judged = [], []

    def scores_of(name):
        asked.append(name)
        return scores[name]

    names = [CONFIGURED, WITHOUT_CONTENT, PLAIN]
    shipped, reason = choose_variant(names, scores_of, popular, guard, lambda n, c: judged.append((n, c)), short)
    return shipped, reason, asked, dict(judged)


def test_a_candidate_is_judged_against_what_would_ship_instead():
    """Known answers on 200 validation users: plain SASRec clearly below most-popular does not ship, so
    a richer candidate clearly above most-popular ships though it is far from plain (the guard used to ship
    most-popular there); when plain SASRec would ship, a richer one must not be worse than it."""
    rng = np.random.default_rng(0)
    popular = rng.uniform(0.1, 0.3, size=200)
    weak_plain = popular - 0.08 + rng.normal(0, 0.01, size=200)
    good = popular + 0.05 + rng.normal(0, 0.01, size=200)
    shipped, reason, asked, judged = _choose({CONFIGURED: good, PLAIN: weak_plain}, popular)
    assert shipped == CONFIGURED and "plain SASRec was not shown better than" in reason
    assert WITHOUT_CONTENT not in asked  # the chain stops at the first candidate that ships
    assert [c.baseline for c in judged[CONFIGURED]] == [POPULARITY]

    strong_plain = popular + 0.10 + rng.normal(0, 0.01, size=200)
    shipped, reason, asked, judged = _choose({CONFIGURED: good, WITHOUT_CONTENT: good, PLAIN: strong_plain}, popular)
    assert shipped == PLAIN and "richer variants failed their checks: configured, without_item_content" in reason
    assert [c.baseline for c in judged[CONFIGURED]] == [PLAIN, POPULARITY]
    assert not judged[CONFIGURED][0].passed and judged[CONFIGURED][1].passed

    shipped, reason, _, _ = _choose({CONFIGURED: weak_plain, WITHOUT_CONTENT: weak_plain, PLAIN: weak_plain}, popular)
    assert shipped is None and "no trained variant" in reason


def test_a_richer_candidate_must_beat_plain_sasrec_not_only_tie_with_it():
    """Known answers on 400 validation users: the configured student is level with plain SASRec (+0.001, noise
    0.02 a user: harm beyond 5% excluded, a gain not shown), so plain SASRec ships; +0.01 is a shown gain and
    ships; `richer_needs_gain: false` restores non-inferiority, and the tie ships."""
    rng = np.random.default_rng(2)
    popular = rng.uniform(0.05, 0.1, size=400)
    plain = popular + 0.10 + rng.normal(0, 0.01, size=400)
    noise = rng.normal(0, 0.02, size=400)
    tie, gain = plain + 0.001 + noise - noise.mean(), plain + 0.01 + noise - noise.mean()
    shipped, reason, _, judged = _choose({CONFIGURED: tie, WITHOUT_CONTENT: tie, PLAIN: plain}, popular)
    vs_plain = judged[CONFIGURED][0]
    assert shipped == PLAIN and vs_plain.baseline == PLAIN and vs_plain.needs_gain and not vs_plain.passed
    assert -0.05 * vs_plain.baseline_ndcg < vs_plain.lower_bound < 0 and "gain not shown" in vs_plain.describe()
    shipped, reason, _, judged = _choose({CONFIGURED: gain, PLAIN: plain}, popular)
    assert shipped == CONFIGURED and reason.startswith("better than plain SASRec")
    assert judged[CONFIGURED][0].lower_bound > 0 and "better" in judged[CONFIGURED][0].describe()
    guard = GuardConfig(richer_needs_gain=False)
    shipped, reason, _, _ = _choose({CONFIGURED: tie, PLAIN: plain}, popular, guard=guard)
    assert shipped == CONFIGURED and reason.startswith("not worse than plain SASRec")


def test_a_trained_model_must_beat_most_popular_not_only_tie_with_it():
    """Known answers on 1,000 validation users: plain SASRec and the configured student 2% below most-popular
    (noise 0.02 a user: harm beyond 5% excluded, a gain not shown) do not ship, the popularity prior does;
    +0.01 over most-popular is a shown gain and plain SASRec ships; `popular_needs_gain: false` restores
    non-inferiority, and plain SASRec ships 2% below most-popular (what sample-noisy's test showed)."""
    rng = np.random.default_rng(3)
    popular = rng.uniform(0.05, 0.15, size=1000)
    noise = rng.normal(0, 0.02, size=1000)
    level = popular * 0.98 + noise - noise.mean()
    shipped, reason, _, judged = _choose({CONFIGURED: level, WITHOUT_CONTENT: level, PLAIN: level}, popular)
    vs_popular = judged[PLAIN][0]
    assert shipped is None and reason == "no trained variant was shown better than most-popular on validation"
    assert vs_popular.needs_gain and -0.05 * vs_popular.baseline_ndcg < vs_popular.lower_bound < 0
    ahead = popular + 0.01 + noise - noise.mean()
    shipped, reason, _, _ = _choose({CONFIGURED: level, WITHOUT_CONTENT: level, PLAIN: ahead}, popular)
    assert shipped == PLAIN and reason.startswith("better than most-popular")
    lenient = GuardConfig(popular_needs_gain=False)
    shipped, reason, _, _ = _choose({CONFIGURED: level, WITHOUT_CONTENT: level, PLAIN: level}, popular, guard=lenient)
    assert shipped == PLAIN and reason.startswith("not worse than most-popular")


def test_a_candidate_that_wins_on_average_by_hurting_short_histories_does_not_ship():
    """Known answers on 300 validation users, 60 of them with short histories: the configured student is
    +0.03 on the 240 others and -0.06 on the 60, so +0.012 overall (better than plain SASRec), but its
    short-history users lose 30% to plain SASRec: the slice check fails it and the distilled variant, +0.02
    everywhere, ships. With 15 short-history users (below min_users 20) the slice is too small to
    bound harm, so it is not checked and the configured student ships on its overall figure; nor is a slice that
    holds most validation users."""
    rng = np.random.default_rng(1)
    popular = rng.uniform(0.05, 0.1, size=300)
    plain = popular + 0.10 + rng.normal(0, 0.005, size=300)
    short = np.zeros(300, bool)
    short[:60] = True
    uneven = plain + np.where(short, -0.06, 0.03) + rng.normal(0, 0.005, size=300)
    level = plain + 0.02 + rng.normal(0, 0.005, size=300)
    shipped, reason, _, judged = _choose({CONFIGURED: uneven, WITHOUT_CONTENT: level, PLAIN: plain}, popular, short)
    assert shipped == WITHOUT_CONTENT and "the 60 of them with short histories" in reason
    overall, sliced = judged[CONFIGURED][:2]
    assert overall.passed and overall.needs_gain and overall.difference == pytest.approx(0.012, abs=0.002)
    assert sliced.slice == SHORT_HISTORY and sliced.users == 60 and not sliced.passed and not sliced.needs_gain
    assert sliced.difference == pytest.approx(-0.06, abs=0.003) and "short_history users" in sliced.describe()
    both = [(PLAIN, "all"), (PLAIN, SHORT_HISTORY), (POPULARITY, "all"), (POPULARITY, SHORT_HISTORY)]
    assert [(c.baseline, c.slice) for c in judged[WITHOUT_CONTENT]] == both

    few = np.zeros(300, bool)
    few[:15] = True
    uneven = plain + np.where(few, -0.06, 0.03) + rng.normal(0, 0.005, size=300)
    shipped, reason, _, judged = _choose({CONFIGURED: uneven, WITHOUT_CONTENT: level, PLAIN: plain}, popular, few)
    assert shipped == CONFIGURED and "short histories" not in reason
    assert all(c.slice == "all" for c in judged[CONFIGURED])
    # A majority of short histories cannot hide behind the average: the overall check is theirs, not checked twice.
    most = np.arange(300) < 200
    assert not checks_short_slice(most, GuardConfig()) and checks_short_slice(short, GuardConfig())
    assert not checks_short_slice(few, GuardConfig()) and not checks_short_slice(None, GuardConfig())


def test_per_user_ndcg_averages_each_users_targets():
    scores = per_user_ndcg(np.array([0.0, 9.0, 10.0, 1.0]), np.array([0, 0, 1, 2]), users=3)
    np.testing.assert_allclose(scores, [(1 + 1 / np.log2(11)) / 2, 0.0, 1 / np.log2(3)])


def test_variant_chain_switches_one_component_at_a_time(make_config):
    cfg = make_config()
    full = variant_chain(cfg, has_content=True, has_profiles=True)
    assert [name for name, _ in full] == [CONFIGURED, WITHOUT_CONTENT, PLAIN]
    assert full[1][1].items.text is False and full[1][1].distill.enabled
    assert full[2][1].items.text is False and not full[2][1].distill.enabled
    assert all(c.name == cfg.name for _, c in full)  # the checkpoint id keeps the configured name
    # No item content in the data: the configured student is the distilled one, then plain.
    assert [n for n, _ in variant_chain(cfg, has_content=False, has_profiles=True)] == [CONFIGURED, PLAIN]
    # Neither content nor profiles: the configured student is plain SASRec; one candidate.
    assert [n for n, _ in variant_chain(cfg, has_content=False, has_profiles=False)] == [PLAIN]
    assert [n for n, _ in variant_chain(cfg, has_content=True, has_profiles=False)] == [CONFIGURED, PLAIN]


def _cyclic_frames(num_users: int = 60, length: int = 20, num_items: int = 16):
    from tests.support.student import cyclic_interactions, group_profiles

    inter = cyclic_interactions(num_users=num_users, length=length, num_items=num_items, seed=3)
    users = sorted(inter.user_id.unique())
    profiles = group_profiles(users)
    frame = pd.DataFrame({"user_id": users, "profile_embedding": [profiles[u].tolist() for u in users]})
    return inter, frame


def _content(inter: pd.DataFrame, vectors) -> ItemContent:
    items = sorted(inter.item_id.unique())
    return ItemContent(pd.DataFrame({"item_id": items, "item_text_embedding": [vectors(i) for i in items]}))


def test_a_useless_text_view_and_a_drowning_distillation_fall_back_to_plain_sasrec(tmp_path, make_config):
    """The configured student reads items by their text alone, and every item has the same text, so
    it cannot tell items apart; its distillation takes all the loss. The next item is determined by
    the current one, which plain SASRec learns: the guard must ship plain SASRec, and say so."""
    inter, profiles = _cyclic_frames()
    content = _content(inter, lambda item: [1.0, 0.5, 0.25, 0.0])
    cfg = make_config(
        "items.id=false",
        "items.text=true",
        "distill.alpha=1.0",
        "distill.distill_fraction=1.0",
        "train.epochs=30",
        "train.eval_every=3",
        "guard.targets_per_user=1",  # only the first item after the cutoff follows from the history
    )
    result = train_from_frames(cfg, inter, profiles, tmp_path / "ckpt", validate=True, content=content)
    guard = result["guard"]
    assert result["variant"] == PLAIN, guard["reason"]
    assert [c["variant"] for c in guard["candidates"]] == [CONFIGURED, WITHOUT_CONTENT, PLAIN]
    assert [c["passed"] for c in guard["candidates"]] == [False, False, True]
    worst = guard["candidates"][0]["checks"][0]
    assert worst["baseline"] == PLAIN and worst["lower_bound"] < worst["threshold"]
    assert result["best_valid"]["ndcg@10"] > 0.9 and not result["ranks_by_popularity"]
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.variant == PLAIN and loaded.stats.extra["guard"]["variant"] == PLAIN
    assert loaded.checkpoint_id.startswith(cfg.name + "-")
    assert loaded.stats.num_interactions == len(inter)  # refitted on everything before the cutoff
    histories = pd.DataFrame({"user_id": ["u1"], "item_ids": [["i1", "i2"]]})
    assert score_users(histories, loaded).student_variant.tolist() == [PLAIN]


def test_a_student_level_with_plain_sasrec_ships_plain_sasrec(tmp_path, make_config):
    """Distinct, informative item texts and a learnable sequence: the configured student (text view and
    distillation) is level with plain SASRec (both rank every next item first), so its components show no gain
    and plain SASRec ships; with `guard.richer_needs_gain=false` a tie is enough and every component ships."""
    inter, profiles = _cyclic_frames()
    rng = np.random.default_rng(0)
    table = {f"i{k}": rng.normal(size=8).tolist() for k in range(1, 17)}
    content = _content(inter, table.__getitem__)
    cfg = make_config("items.text=true", "train.epochs=30", "train.eval_every=3")
    result = train_from_frames(cfg, inter, profiles, tmp_path / "level", validate=True, content=content)
    assert result["variant"] == PLAIN, result["guard"]["reason"]
    vs_plain = result["guard"]["candidates"][0]["checks"][0]
    assert vs_plain["baseline"] == PLAIN and vs_plain["needs_gain"] and not vs_plain["passed"]
    assert vs_plain["difference"] == pytest.approx(0.0, abs=0.02)  # level: the gain, not a harm, is missing
    assert load_checkpoint(tmp_path / "level").variant == PLAIN

    cfg = make_config("items.text=true", "train.epochs=30", "train.eval_every=3", "guard.richer_needs_gain=false")
    result = train_from_frames(cfg, inter, profiles, tmp_path / "tie", validate=True, content=content)
    assert result["variant"] == CONFIGURED, result["guard"]["reason"]
    assert [c["variant"] for c in result["guard"]["candidates"]] == [CONFIGURED]
    checks = result["guard"]["candidates"][0]["checks"]
    assert [c["baseline"] for c in checks] == [PLAIN, POPULARITY] and all(c["passed"] for c in checks)
    assert load_checkpoint(tmp_path / "tie").variant == CONFIGURED


def test_a_recorded_decision_replays_to_the_model_the_guard_shipped(tmp_path, make_config):
    """The guard's record (the checkpoint manifest) holds what a refit needs: repeating the shipped candidate's
    run from it (its epochs, its switch to L_rec alone, its trending prior) gives the shipped weights exactly,
    which is how evaluate retrains the shipped variant and plain SASRec on more seeds without validating again."""
    inter, profiles = _cyclic_frames()
    rng = np.random.default_rng(0)
    table = {f"i{k}": rng.normal(size=8).tolist() for k in range(1, 17)}
    content = _content(inter, table.__getitem__)
    cfg = make_config(
        "items.text=true",
        "train.epochs=30",
        "train.eval_every=3",
        "distill.distill_fraction=0.8",
        "train.patience=2",
        "train.min_epochs=3",
        "guard.richer_needs_gain=false",
        "guard.prior_weights=[0.5]",
    )  # fmt: skip: distillation stalls and stops before the best epoch, well before its 24 by default
    guarded = train_from_frames(cfg, inter, profiles, tmp_path / "guarded", validate=True, content=content)
    assert guarded["variant"] == CONFIGURED, guarded["guard"]["reason"]
    shipped = guarded["guard"]["candidates"][0]
    replay = Replay.recorded(load_checkpoint(tmp_path / "guarded").stats.extra["guard"], CONFIGURED)
    assert replay.epochs == max(shipped["best_epoch"], 1) == guarded["guard"]["refit_epochs"]
    assert replay.distill_until == shipped["distill_until"] and 0 < replay.distill_until < min(replay.epochs, 24)
    assert (
        replay.prior_weight == shipped["prior_weight"] and replay.half_life == guarded["guard"]["popularity_half_life"]
    )

    replayed = train_from_frames(cfg, inter, profiles, tmp_path / "replayed", content=content, replay=replay)
    assert replayed["epochs_run"] == replay.epochs and replayed["guard"] is None
    want = load_checkpoint(tmp_path / "guarded").model.state_dict()
    got = load_checkpoint(tmp_path / "replayed").model.state_dict()
    assert want.keys() == got.keys() and all(torch.allclose(want[k], got[k], atol=1e-6) for k in want)

    # No record of the variant (or one written before distill_until was kept): the caller validates anew.
    assert Replay.recorded(guarded["guard"], WITHOUT_CONTENT) is None and Replay.recorded(None, PLAIN) is None
    older = {**guarded["guard"], "candidates": [{k: v for k, v in shipped.items() if k != "distill_until"}]}
    assert Replay.recorded(older, CONFIGURED) is None
    assert Replay.recorded(guarded["guard"], CONFIGURED, with_prior=False).prior_weight == 0.0


def test_a_replay_adds_its_trending_prior_to_the_item_biases(cyclic_data, make_config):
    """Same run with and without the prior: the item biases differ by weight x log(1 + all-time counts)."""
    _, seqs, index, profiles = cyclic_data
    data = build_training_data(seqs, index, profiles)
    cfg = make_config("train.epochs=10")
    without, with_prior = (replay_fit(cfg, data, Replay(3, 2, weight, None)) for weight in (0.0, 2.0))
    counts = np.zeros(len(index))
    for sequence in seqs.values():
        np.add.at(counts, np.asarray(index.encode(sequence)) - 1, 1.0)
    bias = (with_prior.model.head.bias - without.model.head.bias).detach().numpy()
    np.testing.assert_allclose(bias, 2.0 * np.log1p(counts), rtol=1e-5, atol=1e-5)


def test_without_enough_validation_users_the_popularity_prior_ships(tmp_path, make_config):
    """Twelve users: whatever the models learn, twelve paired differences cannot bound the harm
    (min_users 20), so nothing is shown better than most-popular."""
    inter, profiles = _cyclic_frames(num_users=12)
    result = train_from_frames(make_config("train.epochs=6"), inter, profiles, tmp_path / "ckpt", validate=True)
    assert result["variant"] == POPULARITY and result["ranks_by_popularity"]
    assert result["guard"]["validation_users"] == 12
    assert all(not c["passed"] for c in result["guard"]["candidates"])
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.variant == POPULARITY and float(loaded.model.head.scale) == 0.0
    # No item side is served: the prior's "logit" is popularity, and a ranker must not learn it as the student's.
    served = score_items(pd.DataFrame({"item_id": list(loaded.item_index.item_ids)}), loaded)
    assert served.student_item_embedding.isna().all() and served.student_item_bias.isna().all()
    assert served.student_item_seen.any()


def test_refit_repeats_the_validated_schedule(cyclic_data, make_config):
    """`stop_after` cuts a run short without moving its distillation phase (laid out for train.epochs)."""
    _, seqs, index, profiles = cyclic_data
    data = build_training_data(seqs, index, profiles)
    cfg = make_config("train.epochs=10", "distill.distill_fraction=0.5")
    result = fit(cfg, data, None, log=None, stop_after=4)
    assert len(result.history) == 4 and all(row["distilling"] == 1.0 for row in result.history)
    longer = fit(cfg, data, None, log=None, stop_after=7)
    assert [row["distilling"] for row in longer.history] == [1.0] * 5 + [0.0] * 2


def test_parquet_item_times_are_read_aligned_and_a_misaligned_row_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from profile_features.student.sources import ParquetUsers

    index = ItemIndex.from_items(["i1", "i2", "i3"])
    table = {"user_id": ["a"], "item_ids": [["i1", "gone", "i3"]], "item_times": [[10, 20, 30]]}
    pq.write_table(pa.table(table), tmp_path / "ok.parquet")
    (chunk,) = ParquetUsers(str(tmp_path / "ok.parquet"), index).chunks()
    assert chunk.sequences == [index.encode(["i1", "i3"])] and chunk.times[0].tolist() == [10, 30]
    pq.write_table(pa.table({**table, "item_times": [[10, 20]]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad.parquet: user 'a' has 3 item_ids but 2 item_times"):
        list(ParquetUsers(str(tmp_path / "bad.parquet"), index).chunks())


def test_decayed_counts_weigh_each_interaction_by_its_age():
    """Half-life 10: an interaction 10 units before `now` counts 1/2, 20 before 1/4; None counts 1 each."""
    from profile_features.student.popularity import decayed_counts, half_life_candidates, newest_time

    data, index = _timed_data()  # i1 at 10, 50, 2; i2 at 20, 5; i3 at 30, 60; i4 at 40, 1
    assert newest_time(data) == 60
    plain, decayed = decayed_counts(data, 60, [None, 10.0])
    assert plain.tolist() == [3.0, 2.0, 2.0, 2.0]
    assert decayed_counts(data, 60, [None])[0].tolist() == plain.tolist()  # no times needed for all-time
    expected = {"i1": 2**-5 + 2**-1 + 2**-5.8, "i2": 2**-4 + 2**-5.5, "i3": 2**-3 + 1.0, "i4": 2**-2 + 2**-5.9}
    assert decayed == pytest.approx([expected[i] for i in ["i1", "i2", "i3", "i4"]])
    assert half_life_candidates(8.0) == [None, 2.0, 8.0, 32.0] and half_life_candidates(0) == [None]


def _trending_frames(num_users: int = 12) -> pd.DataFrame:
    """Ten old items everyone took in the first month; then two new ones trend (half the users each, days
    50-55) and every user takes both after day 60. By all-time counts the new items rank below the ten old
    ones (outside a top 10); by recent counts they rank first."""
    start, rows = pd.Timestamp("2024-01-01", tz="UTC"), []
    for u in range(num_users):
        for k in range(10):
            rows.append((f"u{u}", f"old{k}", start + pd.Timedelta(days=k * 3, hours=u)))
        rows.append((f"u{u}", f"new{u % 2}", start + pd.Timedelta(days=50 + u % 5, hours=u)))
        for k in range(2):
            rows.append((f"u{u}", f"new{k}", start + pd.Timedelta(days=60 + k, hours=u)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_the_popularity_baseline_and_fallback_follow_what_is_trending(tmp_path, make_config):
    """On drifting data the guard's most-popular is chosen on validation among recency weightings: here the
    recent one (the validation targets are the trending items), and the shipped prior ranks them first."""
    inter = _trending_frames()
    cfg = make_config("train.epochs=4", "guard.targets_per_user=2")
    result = train_from_frames(cfg, inter, None, tmp_path / "ckpt", validate=True)
    guard = result["guard"]
    assert result["variant"] == POPULARITY  # 12 validation users: nothing trained can be shown not worse
    assert guard["popularity_half_life_windows"] == 0.25 and guard["popularity_half_life"] > 0
    assert guard["popularity_ndcg"] > 0.6  # both targets in the top two; all-time counts rank them 11th-12th
    loaded = load_checkpoint(tmp_path / "ckpt")
    bias = loaded.model.head.bias.detach().numpy()
    index = loaded.item_index.to_index
    assert min(bias[index["new0"] - 1], bias[index["new1"] - 1]) > max(bias[index[f"old{k}"] - 1] for k in range(10))


def test_the_trending_prior_weight_is_the_one_that_ranks_validation_best(trained):
    """Known answers: a model whose scores are its item biases alone ([3, 2, 1, 0, ...]) and a prior that only
    the last item has. That item, the target, ranks last at weight 0, third at 0.25, second at 0.5 and first
    from 1; the smallest weight that ranks it first wins (a later weight must do better), as the gain is the
    same for every user."""
    result, data = trained
    model = copy.deepcopy(result.model)
    n = len(model.head.bias)
    with torch.no_grad():
        model.head.scale.zero_()
        model.head.bias.copy_(torch.tensor([3.0, 2.0, 1.0] + [-10.0] * (n - 4) + [0.0]))
    prior = np.zeros(n)
    prior[-1] = 5.0
    inputs, targets, owner = [[1, 2], [2, 3]], [n, n], np.array([0, 1])
    ranks = blended_target_ranks(model, inputs, targets, prior, [0.0, 0.25, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(ranks[:, 0], [3, 2, 1, 0, 0])
    weights = [0.0, 0.25, 0.5, 1.0, 2.0]
    scores, weight = _with_trending_prior(FitResult(model), inputs, targets, owner, prior, weights, 0.9)
    assert weight == 1.0 and scores.tolist() == [1.0, 1.0]
    # A gain that is not shown stays out: the prior lifts one user's target (last -> first) and drops the other's
    # (first -> second); weight 1 is ahead on the mean (+0.10), but two users cannot show it.
    mixed = _with_trending_prior(FitResult(model), inputs, [n, 1], owner, prior, weights, 0.9)
    assert mixed[1] == 0.0 and mixed[0] == pytest.approx([1 / np.log2(5), 1.0])
    # No weights but 0: the fit's own validation ranks, untouched.
    fit_result = FitResult(model, best_ranks=np.array([3.0, 3.0]))
    scores, weight = _with_trending_prior(fit_result, inputs, targets, owner, prior, [0.0], 0.9)
    assert weight == 0.0 and scores == pytest.approx([1 / np.log2(5)] * 2)

    # Shipping adds weight x log(1 + count) to each item's own bias (all-time counts here: no half-life).
    before = model.head.bias.detach().clone()
    _add_trending_prior(model, data, newest=0, half_life=None, weight=0.5)
    counts = np.zeros(n)
    for chunk in data.chunks():
        for sequence in chunk.sequences:
            np.add.at(counts, np.asarray(sequence) - 1, 1.0)
    np.testing.assert_allclose((model.head.bias.detach() - before).numpy(), 0.5 * np.log1p(counts), rtol=1e-6)
