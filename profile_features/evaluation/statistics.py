"""Paired differences over users and seeds, with a confidence interval and a three-way outcome.

Every comparison in the report is "does variant A rank better than baseline B for the same users,
trained with the same seeds?". Each user's difference is averaged over seeds first, so users are
the sample; a seed moves the whole model, so the seed-to-seed spread of the mean difference is
added to the users' standard error (slightly conservative: per-user seed noise enters both terms).
With one seed that spread cannot be measured; the estimate says so.

The outcome is one of three words, never a verdict the data cannot support:
- "passed": the whole 95% interval is above zero (the variant is better, beyond the noise);
- "failed": the whole interval is below zero (it is worse);
- "inconclusive": the interval holds zero, or fewer than `min_users` users were compared. The
  estimate then says the smallest lift the comparison could have detected (80% power) and how many
  users would show the observed difference, if it is real.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["Z_INTERVAL", "Z_POWER", "Outcome", "PairedDifference", "paired_difference"]

Z_INTERVAL = 1.96  # two-sided 95% interval: "passed" is a 2.5% one-sided test of "no better"
Z_POWER = 0.8416  # 80% power, for the smallest detectable difference
Outcome = Literal["passed", "failed", "inconclusive"]


@dataclass(frozen=True)
class PairedDifference:
    """Variant minus baseline, per user averaged over seeds, then over users."""

    users: int
    seeds: int
    mean: float  # the variant's mean metric over the paired users and seeds
    baseline_mean: float
    difference: float
    standard_error: float  # users and seeds combined
    low: float  # 95% interval of `difference`
    high: float
    seed_spread: float  # std over seeds of the per-seed mean difference (NaN with one seed)
    outcome: Outcome
    reason: str  # why the outcome, in words (e.g. "interval holds zero")

    @property
    def lift(self) -> float:
        return self.difference / self.baseline_mean if self.baseline_mean else float("nan")

    @property
    def detectable_lift(self) -> float:
        """The smallest relative lift this comparison finds 80% of the time."""
        if not self.baseline_mean or not np.isfinite(self.standard_error):
            return float("nan")
        return (Z_INTERVAL + Z_POWER) * self.standard_error / self.baseline_mean

    @property
    def users_needed(self) -> int | None:
        """Users that would show the observed difference with 80% power, if it is real (None: no difference)."""
        if not self.difference or not np.isfinite(self.standard_error) or self.users < 2:
            return None
        per_user_sd = self.standard_error * math.sqrt(self.users)
        return int(math.ceil(((Z_INTERVAL + Z_POWER) * per_user_sd / abs(self.difference)) ** 2))

    def as_dict(self) -> dict:
        return asdict(self) | {
            "lift": self.lift,
            "detectable_lift": self.detectable_lift,
            "users_needed": self.users_needed,
        }

    def describe(self) -> str:
        """One line: difference, interval, users, seeds and the outcome."""
        return (
            f"{self.difference:+.4f} ({100 * self.lift:+.1f}%), 95% CI {self.low:+.4f} .. {self.high:+.4f} "
            f"on {self.users} users x {self.seeds} seeds: {self.outcome} ({self.reason})"
        )


def _values(frame: pd.DataFrame, variant: str, users: Collection[str] | None) -> pd.Series:
    rows = frame[frame.variant == variant]
    if users is not None:
        rows = rows[rows.user_id.isin(set(users))]
    return rows.set_index(["seed", "user_id"]).value.dropna()


def paired_difference(
    per_user: pd.DataFrame,
    variant: str,
    baseline: str,
    users: Collection[str] | None = None,
    min_users: int = 20,
) -> PairedDifference | None:
    """`variant` against `baseline` on the (seed, user) pairs both have.

    Args:
        per_user: variant, seed, user_id, value (one metric per user and seed, e.g. NDCG@10).
        users: only these users (a slice); None: every user.
        min_users: with fewer paired users the outcome is "inconclusive" whatever the interval says.

    Returns:
        None when the two share no (seed, user) pair.
    """
    values, base = _values(per_user, variant, users), _values(per_user, baseline, users)
    both = values.index.intersection(base.index)
    if not len(both):
        return None
    delta = values[both] - base[both]
    per_user_delta = delta.groupby(level="user_id").mean()
    per_seed_delta = delta.groupby(level="seed").mean()
    n, k = len(per_user_delta), len(per_seed_delta)
    difference = float(per_user_delta.mean())
    user_se = float(per_user_delta.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    seed_spread = float(per_seed_delta.std(ddof=1)) if k > 1 else float("nan")
    standard_error = math.hypot(user_se, seed_spread / math.sqrt(k)) if k > 1 else user_se
    low, high = difference - Z_INTERVAL * standard_error, difference + Z_INTERVAL * standard_error
    if n < min_users:
        outcome, reason = "inconclusive", f"fewer than {min_users} users"
    elif not standard_error and not difference:
        outcome, reason = "inconclusive", "identical for every user: the two rank alike"
    elif low > 0:
        outcome, reason = "passed", "interval above zero"
    elif high < 0:
        outcome, reason = "failed", "interval below zero"
    else:
        outcome, reason = "inconclusive", "interval holds zero"
    if k == 1:
        reason += "; one seed, seed noise not counted"
    return PairedDifference(
        users=n,
        seeds=k,
        mean=float(values[both].mean()),
        baseline_mean=float(base[both].mean()),
        difference=difference,
        standard_error=float(standard_error),
        low=float(low),
        high=float(high),
        seed_spread=seed_spread,
        outcome=outcome,
        reason=reason,
    )
