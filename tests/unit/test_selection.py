"""Column-set selection and the tuned LightGBM comparison, on data with a known right answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profile_features.evaluation.gbdt import RankerParams, compare_column_sets, fit_ranker, tune_ranker, user_folds
from profile_features.evaluation.selection import recommend
from profile_features.evaluation.split import build_split, last_to_arrive, validation_users


def _valid_frame(effects: dict[str, float], users: int = 300, seeds: int = 3, noise: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.6, size=users)
    rows = []
    for variant, effect in effects.items():
        for seed in range(seeds):
            jitter = 0 if variant == "none" else rng.normal(0, noise, size=users)
            rows.append(
                pd.DataFrame(
                    {
                        "variant": variant,
                        "seed": seed,
                        "user_id": [f"u{i}" for i in range(users)],
                        "value": base + effect + jitter,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_recommendation_takes_a_real_gain_and_prefers_fewer_columns_within_noise():
    valid = _valid_frame({"none": 0.0, "+ noise": 0.0, "+ signal": 0.05, "+ signal and more": 0.0502})
    counts = {"none": 5, "+ noise": 6, "+ signal": 6, "+ signal and more": 30}
    choice = recommend(valid, counts)
    assert choice.helps and choice.variant == "+ signal"  # the bigger set is within one SE of it
    by_name = {c.variant: c for c in choice.candidates}
    assert not by_name["+ noise"].helps and by_name["+ signal"].helps
    assert by_name["+ signal"].difference == pytest.approx(0.05, abs=0.005)


def test_recommendation_is_the_baseline_when_nothing_helps():
    valid = _valid_frame({"none": 0.0, "+ noise": 0.001, "+ harm": -0.05})
    choice = recommend(valid, {"none": 5, "+ noise": 6, "+ harm": 6})
    assert not choice.helps and choice.variant == "none"
    assert "no column set beat the baseline" in choice.reason
    assert choice.reason.endswith("serve none of the plugin's columns for this data")
    tower = recommend(valid, {"none": 5, "+ noise": 6, "+ harm": 6}, otherwise="keep the two-tower's ID-only inputs")
    assert tower.reason.endswith("keep the two-tower's ID-only inputs")  # the advice names what to keep


def test_validation_users_are_the_last_to_arrive_and_never_all():
    frame = pd.DataFrame(
        {"user_id": ["a", "b", "c", "d", "e"], "timestamp": pd.to_datetime([1, 5, 2, 4, 3], unit="D", utc=True)}
    )
    start, end = pd.Timestamp(0, unit="D", tz="UTC"), pd.Timestamp(10, unit="D", tz="UTC")
    assert last_to_arrive(frame, start, end, 0.4) == ["b", "d"]
    assert last_to_arrive(frame.iloc[:2], start, end, 0.9) == ["b"]  # at least one user trains
    assert validation_users(frame, start, end, 0.4) == ["b", "d"]  # nobody returns: the same cut


def test_validation_takes_returning_users_even_when_the_last_to_arrive_are_all_new():
    """r0..r9 have a history before the window and arrive in it early; n0..n9 are new and arrive late
    (as in data where users keep signing up). The last 20% overall would be new users only."""
    start, end = pd.Timestamp("2026-01-10", tz="UTC"), pd.Timestamp("2026-02-01", tz="UTC")
    history = pd.DataFrame({"user_id": [f"r{i}" for i in range(10)], "timestamp": pd.Timestamp("2026-01-01", tz="UTC")})
    returning = pd.DataFrame(
        {"user_id": [f"r{i}" for i in range(10)], "timestamp": [start + pd.Timedelta(hours=i) for i in range(10)]}
    )
    new = pd.DataFrame(
        {"user_id": [f"n{i}" for i in range(10)], "timestamp": [start + pd.Timedelta(days=5 + i) for i in range(10)]}
    )
    frame = pd.concat([history, returning, new], ignore_index=True)
    assert last_to_arrive(frame, start, end, 0.2) == ["n6", "n7", "n8", "n9"]
    assert validation_users(frame, start, end, 0.2) == ["n8", "n9", "r8", "r9"]
    split = build_split(frame, (start, end), end + pd.Timedelta(days=1), 0.2)
    assert split.valid_slices == {"all": ["r8", "r9"], "new": ["n8", "n9"]}
    assert split.train_slices["returning"] == sorted(f"r{i}" for i in range(10))
    assert split.train_slices["new"] == sorted(f"n{i}" for i in range(10))
    assert split.train_slices["cold"] == split.train_slices["returning"]  # one interaction each before the window
    assert not set(split.fit_users) & set(split.valid_users) and len(split.fit_users) == 16


def _with_new_users(returning: dict[str, float], new: dict[str, float], new_users: int = 100) -> pd.DataFrame:
    """Validation values of 300 returning users (u*) and `new_users` new ones (n*), per-variant effects."""
    new_frame = _valid_frame(new, users=new_users).assign(user_id=lambda f: "n" + f.user_id.str[1:])
    return pd.concat([_valid_frame(returning), new_frame], ignore_index=True)


def test_a_set_that_helps_returning_users_but_hurts_new_ones_is_not_recommended():
    valid = _with_new_users(
        {"none": 0.0, "+ helps both": 0.03, "+ hurts new": 0.05},
        {"none": 0.0, "+ helps both": 0.0, "+ hurts new": -0.05},
    )
    counts = {"none": 5, "+ helps both": 6, "+ hurts new": 6}
    slices = {"returning": [f"u{i}" for i in range(300)], "new": [f"n{i}" for i in range(100)]}
    assert recommend(valid, counts).variant == "+ hurts new"  # without the slices the larger gain wins
    choice = recommend(valid, counts, slices)
    assert choice.variant == "+ helps both"  # neutral on new users: within the harm margin
    by_name = {c.variant: c for c in choice.candidates}
    assert not by_name["+ hurts new"].helps and "new users" in by_name["+ hurts new"].blocked_by
    assert by_name["+ hurts new"].slices["new"].difference == pytest.approx(-0.05, abs=0.01)
    few_new = {"returning": slices["returning"], "new": slices["new"][:10]}  # too few new users to judge
    assert recommend(valid, counts, few_new).variant == "+ hurts new"


def test_serve_none_says_which_set_came_closest_and_how_many_users_would_decide():
    """A real but small gain on few users: inconclusive, so "serve none", with the users that would decide it."""
    valid = _valid_frame({"none": 0.0, "+ small": 0.004}, users=40, noise=0.05)
    choice = recommend(valid, {"none": 5, "+ small": 6})
    assert not choice.helps and choice.variant == "none"
    assert choice.candidates[0].overall.outcome == "inconclusive"
    assert "+ small" in choice.more_data and "would decide it" in choice.more_data
    needed = choice.candidates[0].overall.users_needed
    assert needed > 40 and f"about {needed} " in choice.more_data


def _candidate_frame(users: int, seed: int) -> pd.DataFrame:
    """Per user, 20 candidates with 2 positives. `signal` is the label plus noise; `noise` and the
    baseline columns are unrelated to it."""
    rng = np.random.default_rng(seed)
    n = users * 20
    label = np.tile(np.r_[np.ones(2), np.zeros(18)], users)
    return pd.DataFrame(
        {
            "user_id": np.repeat([f"u{i:04d}" for i in range(users)], 20),
            "label": label,
            "base_a": rng.normal(size=n),
            "base_b": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "signal": label + rng.normal(0, 0.7, size=n),
        }
    )


@pytest.fixture(scope="module")
def known_answer_comparison():
    sets = {
        "none": ["base_a", "base_b"],
        "+ noise": ["base_a", "base_b", "noise"],
        "+ signal": ["base_a", "base_b", "signal"],
    }
    frames = [(seed, _candidate_frame(200, seed), _candidate_frame(150, 100 + seed)) for seed in range(2)]
    grid = (RankerParams(7, 20, 1.0, 0.0), RankerParams(3, 50, 0.8, 10.0))
    test_users = [f"u{i:04d}" for i in range(150)]
    return compare_column_sets(frames, sets, {"all": test_users}, 5, grid, log=lambda _: None), sets


def test_lightgbm_selection_recommends_the_label_column_and_not_the_noise(known_answer_comparison):
    results, sets = known_answer_comparison
    choice = recommend(results.valid, {k: len(v) for k, v in sets.items()})
    assert choice.variant == "+ signal"
    assert not {c.variant: c for c in choice.candidates}["+ noise"].helps
    ndcg = results.test[results.test.metric == "ndcg@10"].groupby("variant").value.mean()
    assert ndcg["+ signal"] > ndcg["none"] + 0.2  # the column that determines the label ranks far better
    assert abs(ndcg["+ noise"] - ndcg["none"]) < 0.1
    assert set(results.params) == set(sets) and all(p["trees_on_first_seed"] >= 1 for p in results.params.values())
    # every training user is validated once per seed and set, out of fold
    per_seed = results.valid.groupby(["variant", "seed"]).user_id.agg(["nunique", "size"])
    assert (per_seed["nunique"] == 200).all() and (per_seed["size"] == 200).all()
    assert set(results.test_per_user.user_id) <= {f"u{i:04d}" for i in range(150)}
    assert all(len(p["final_trees_per_seed"]) == 2 for p in results.params.values())


def test_settled_settings_refit_the_same_final_models_without_tuning(known_answer_comparison):
    """The cold run reuses the full run's settings and tree counts: on the same rows it must reproduce the
    full run's test figures exactly, and validate nobody (nothing is tuned or cross-validated)."""
    results, sets = known_answer_comparison
    frames = [(seed, _candidate_frame(200, seed), _candidate_frame(150, 100 + seed)) for seed in range(2)]
    fits = []
    again = compare_column_sets(
        frames, sets, {"all": [f"u{i:04d}" for i in range(150)]}, 5, log=fits.append, settled=results.params
    )
    assert again.valid.empty
    pd.testing.assert_frame_equal(again.test, results.test)
    assert {v: p["final_trees_per_seed"] for v, p in again.params.items()} == {
        v: p["final_trees_per_seed"] for v, p in results.params.items()
    }
    assert fits and all("settled earlier" in line for line in fits if "lightgbm seed" in line and "train" in line)


def test_user_folds_depend_on_the_id_alone_and_are_balanced():
    users = [f"user-{i}" for i in range(5000)]
    folds = user_folds(users, 5)
    assert folds == user_folds(list(reversed(users)), 5)  # order does not matter
    sizes = np.bincount(list(folds.values()), minlength=5)
    assert sizes.min() > 900 and sizes.max() < 1100


def test_a_fold_is_never_scored_by_a_model_that_saw_or_stopped_on_it():
    """A column that identifies the positives of the users a model trains on but is noise for everyone else:
    out-of-fold scores must stay at chance, while in-sample they would be near perfect."""
    frame = _candidate_frame(300, 5)
    rng = np.random.default_rng(0)
    frame["leak"] = rng.normal(size=len(frame))  # pure noise: nothing to learn across users
    sets = {"none": ["base_a", "base_b"], "+ leak": ["base_a", "base_b", "leak"]}
    test = _candidate_frame(100, 6).assign(leak=lambda f: rng.normal(size=len(f)))
    results = compare_column_sets(
        [(0, frame, test)], sets, {"all": test.user_id.unique()}, 5, (RankerParams(63, 5, 1.0, 0.0),), log=print
    )
    oof = results.valid.groupby("variant").value.mean()
    assert oof["+ leak"] < 0.45  # chance NDCG@10 with 2 of 20 positives is about 0.33


def test_early_stopping_stops_a_model_that_only_overfits():
    train, valid = _candidate_frame(150, 1), _candidate_frame(60, 2)
    model = fit_ranker(train, ["base_a", "base_b", "noise"], 0, RankerParams(63, 5, 1.0, 0.0), valid)
    assert model.best_iteration_ < 200  # validation NDCG never improves for long on pure noise
    tuned = tune_ranker(train, valid, ["signal"], 0, (RankerParams(7, 20, 1.0, 0.0), RankerParams(3, 50, 0.8, 10.0)))
    assert tuned.valid_ndcg > 0.6 and tuned.params in (RankerParams(7, 20, 1.0, 0.0), RankerParams(3, 50, 0.8, 10.0))


def _small_validation(rng: np.random.Generator, effect: float, users: int = 24, seeds: int = 3) -> pd.DataFrame:
    """As on ml-100k: few validation users, per-user noise far larger than the effect, some seed noise."""
    base = rng.uniform(0.2, 0.8, size=users)
    rows = [pd.DataFrame({"variant": "none", "seed": s, "user_id": range(users), "value": base}) for s in range(seeds)]
    for seed in range(seeds):
        shift = effect + rng.normal(0, 0.01)  # the seed moves the whole model
        value = base + shift + rng.normal(0, 0.15, size=users)
        rows.append(pd.DataFrame({"variant": "+ set", "seed": seed, "user_id": range(users), "value": value}))
    return pd.concat(rows, ignore_index=True)


def test_the_rule_rarely_passes_no_effect_and_sees_a_clear_gain_on_few_users():
    """Calibration over repeated draws: a set passes only when its 95% interval is above zero, so with no effect
    at most 2.5% of the time (fewer: the noise estimate counts the per-user seed noise in both its terms, so it
    errs on the side of recommending nothing); a clear gain (five true standard errors) on 24 validation users
    passes nearly always."""
    rng = np.random.default_rng(7)
    counts = {"none": 5, "+ set": 7}
    se = 0.15 / np.sqrt(3) / np.sqrt(24)  # users' SE of the seed-averaged per-user difference
    noise = np.hypot(se, 0.01 / np.sqrt(3))

    def passes(effect: float) -> float:
        return np.mean([recommend(_small_validation(rng, effect), counts).helps for _ in range(200)])

    assert passes(0.0) < 0.05
    assert passes(5 * noise) > 0.85
    assert passes(-5 * noise) == 0.0
