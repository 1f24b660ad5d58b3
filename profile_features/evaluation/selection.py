"""Which column set to serve: chosen on validation users, never on the test users.

A column set is recommended only when it beats the baseline on validation by more than
the noise. Two kinds of noise add up: which users happen to validate (the standard error
of the mean per-user paired difference) and which seed trained the models (the seed
spread of the validation means; the mean over `k` seeds has `spread / sqrt(k)` of it).
The paired difference must exceed `z` times their combined standard error; the question
is one-sided (does the set beat the baseline?), so `z` = 1.645 is a 5% test, conservative
because per-user seed noise enters both terms (tests/test_selection.py measures it). Among
the sets that pass, the one-standard-error rule picks the smallest set whose validation
mean is within one standard error of the best, so a set that adds columns without a
clear gain is not preferred. A `guard` population (the new users of validation, who
have no profile) must not get worse: a set whose paired difference there is below
`-z` standard errors fails, when the guard has enough users to tell. When none passes,
the baseline is the recommendation and the report says that no group of the plugin's
columns helped on this data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Candidate", "Recommendation", "recommend"]


@dataclass(frozen=True)
class Candidate:
    """One column set's validation figures against the baseline."""

    variant: str
    columns: int
    mean: float  # validation metric, mean over seeds
    difference: float  # mean per-user paired difference over the baseline
    standard_error: float  # of `difference`, over users
    seed_spread: float  # larger seed std of the two variants' validation means
    helps: bool
    guard_difference: float | None = None  # paired difference on the guard population (None: too few users)
    guard_standard_error: float | None = None
    noise: float = float("nan")  # combined standard error of `difference`: users and seeds


@dataclass(frozen=True)
class Recommendation:
    variant: str
    helps: bool  # False: no set beat the baseline beyond the noise
    reason: str
    candidates: list[Candidate] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "variant": self.variant,
            "helps": self.helps,
            "reason": self.reason,
            "candidates": [asdict(c) for c in self.candidates],
        }


def _per_user(valid: pd.DataFrame, variant: str) -> pd.Series:
    """(seed, user_id) -> value for one variant."""
    rows = valid[valid.variant == variant]
    return rows.set_index(["seed", "user_id"]).value


def _paired(valid: pd.DataFrame, variant: str, baseline: str) -> tuple[int, float, float]:
    """Users, mean per-user paired difference of `variant` over `baseline` and its standard error.
    Seeds are averaged per user first: users are the sample."""
    values, base = _per_user(valid, variant), _per_user(valid, baseline)
    per_user = (values - base.reindex(values.index)).dropna().groupby(level="user_id").mean()
    n = len(per_user)
    difference = float(per_user.mean()) if n else float("nan")
    se = float(per_user.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    return n, difference, se


def recommend(
    valid: pd.DataFrame,
    column_counts: dict[str, int],
    baseline: str = "none",
    z: float = 1.645,
    min_users: int = 20,
    guard: pd.DataFrame | None = None,
    otherwise: str = "serve none of the plugin's columns for this data",
) -> Recommendation:
    """Pick the column set to serve from per-user validation values.

    Args:
        valid: variant, seed, user_id, value (one validation metric per user, e.g. NDCG@10).
        column_counts: variant -> number of columns (smaller wins near-ties).
        baseline: the variant without the plugin's columns.
        z: combined standard errors the paired gain must exceed (one-sided; 1.645 is a 5% test); the
            guard fails a set whose difference there is below -z of its standard errors.
        min_users: with fewer validation users nothing is recommended (their standard error is not
            to be trusted); a smaller guard is not judged.
        guard: the same columns for a second population the chosen set must not make worse.
        otherwise: the advice when no set helps.
    """
    base = _per_user(valid, baseline)
    if base.empty:
        raise ValueError(f"no validation values for the baseline {baseline!r}")
    base_seed_means = base.groupby(level="seed").mean()
    guard_users = 0 if guard is None or guard.empty else guard.user_id.nunique()
    candidates = []
    for variant in dict.fromkeys(valid.variant):
        if variant == baseline:
            continue
        n, difference, se = _paired(valid, variant, baseline)
        seed_means = _per_user(valid, variant).groupby(level="seed").mean()
        spread = max(_std(seed_means), _std(base_seed_means))
        noise = float(np.hypot(se, spread / np.sqrt(len(seed_means))))
        helps = bool(n >= min_users and difference > z * noise)
        guard_difference = guard_se = None
        if guard_users >= min_users:
            _, guard_difference, guard_se = _paired(guard, variant, baseline)
            helps = helps and not guard_difference < -z * guard_se
        candidates.append(
            Candidate(
                variant,
                column_counts.get(variant, 0),
                float(seed_means.mean()),
                difference,
                se,
                spread,
                helps,
                guard_difference,
                guard_se,
                noise,
            )
        )
    passing = [c for c in candidates if c.helps]
    users = base.index.get_level_values("user_id").nunique()
    if users < min_users:
        return Recommendation(
            baseline,
            False,
            f"only {users} validation users (fewer than {min_users}): too few to "
            "tell any column set from the baseline; evaluate on more users",
            candidates,
        )
    if not passing:
        return Recommendation(
            baseline,
            False,
            "no column set beat the baseline on validation users beyond the noise "
            f"({z:g} standard errors of the paired difference, users and seeds combined)"
            + (" without making new users worse" if guard_users >= min_users else "")
            + f": {otherwise}",
            candidates,
        )
    best = max(passing, key=lambda c: c.mean)
    near = [c for c in passing if c.mean >= best.mean - best.standard_error]
    chosen = min(near, key=lambda c: (c.columns, -c.mean))
    reason = (
        f"validation {chosen.difference:+.4f} over {baseline} (standard error {chosen.standard_error:.4f}, "
        f"seed spread {chosen.seed_spread:.4f})"
    )
    if chosen is not best:
        reason += f"; the smallest set within one standard error of the best ({best.variant})"
    return Recommendation(chosen.variant, True, reason, candidates)


def _std(values: pd.Series) -> float:
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0
