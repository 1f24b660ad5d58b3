"""Paired differences over users and seeds: hand-computed values and the three outcomes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from profile_features.evaluation.statistics import Z_INTERVAL, Z_POWER, paired_difference


def _frame(values: dict[str, list[list[float]]]) -> pd.DataFrame:
    """values[variant][seed][user] -> the long per-user frame."""
    rows = []
    for variant, per_seed in values.items():
        for seed, per_user in enumerate(per_seed):
            for user, value in enumerate(per_user):
                rows.append({"variant": variant, "seed": seed, "user_id": f"u{user}", "value": value})
    return pd.DataFrame(rows)


def test_paired_difference_matches_a_hand_computation():
    frame = _frame(
        {
            "base": [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]],
            "new": [[0.2, 0.2, 0.5, 0.4], [0.3, 0.2, 0.3, 0.6]],
        }
    )
    found = paired_difference(frame, "new", "base", min_users=2)
    per_user = np.array([0.15, 0.0, 0.1, 0.1])  # seed-averaged differences
    per_seed = np.array([0.075, 0.1])
    se = math.hypot(per_user.std(ddof=1) / 2, per_seed.std(ddof=1) / math.sqrt(2))
    assert found.difference == pytest.approx(per_user.mean())
    assert found.standard_error == pytest.approx(se)
    assert found.low == pytest.approx(per_user.mean() - Z_INTERVAL * se)
    assert found.users == 4 and found.seeds == 2 and found.baseline_mean == pytest.approx(0.25)
    assert found.lift == pytest.approx(per_user.mean() / 0.25)
    assert found.detectable_lift == pytest.approx((Z_INTERVAL + Z_POWER) * se / 0.25)
    sd = se * 2
    assert found.users_needed == math.ceil(((Z_INTERVAL + Z_POWER) * sd / per_user.mean()) ** 2)


def test_outcomes_are_passed_failed_or_inconclusive():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 0.5, size=300)

    def outcome(effect: float, users: int = 300, min_users: int = 20) -> str:
        noisy = [list(base[:users] + effect + rng.normal(0, 0.05, size=users)) for _ in range(3)]
        frame = _frame({"base": [list(base[:users])] * 3, "v": noisy})
        return paired_difference(frame, "v", "base", min_users=min_users).outcome

    assert outcome(0.02) == "passed"
    assert outcome(-0.02) == "failed"
    assert outcome(0.0) == "inconclusive"
    assert outcome(0.05, users=10) == "inconclusive"  # fewer users than min_users, however clear


def test_one_seed_is_stated_and_only_shared_pairs_count():
    frame = _frame({"base": [[0.1, 0.2, 0.3]], "v": [[0.2, 0.3]]})  # v lacks user u2
    found = paired_difference(frame, "v", "base", min_users=1)
    assert found.users == 2 and found.seeds == 1 and "one seed" in found.reason
    assert found.difference == pytest.approx(0.1)
    assert paired_difference(frame, "v", "base", users=["u2"]) is None


def test_identical_variants_are_inconclusive_and_say_so():
    frame = _frame({"base": [[0.1, 0.2, 0.3]] * 2, "same": [[0.1, 0.2, 0.3]] * 2})
    found = paired_difference(frame, "same", "base", min_users=2)
    assert found.outcome == "inconclusive" and "identical" in found.reason and found.users_needed is None
