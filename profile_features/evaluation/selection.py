"""Which column set to serve: chosen on validation users, never on the test users.

A set is served only when its validation gain over the baseline is beyond the noise for the
validation users as a whole (the 95% interval of the paired difference above zero; statistics.py:
users and seeds, paired) AND no slice of them (returning, new, cold users) may be harmed: on every
slice large enough to judge, a non-inferiority test must exclude a loss larger than `harm_margin`
of the baseline's mean there (the one-sided 95% lower bound above -margin x baseline; default 5%,
the margin the student's deployment guard uses too). The margin is what "no harm" means for a
slice the set cannot help: a set of user-side columns leaves new users where they were, and a zero
difference can never have an interval wholly above zero, however many users there are. Among the sets that qualify,
the one-standard-error rule picks the smallest set whose gain is within one standard error of the
best, so a set that adds columns without a clear gain is not preferred. When none qualifies, the
baseline is the recommendation, and the reason says which set came closest and how many users
would decide it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import pandas as pd

from profile_features.evaluation.statistics import Z_POWER, PairedDifference, paired_difference

__all__ = ["Candidate", "Recommendation", "recommend", "slice_lower_bound"]


@dataclass(frozen=True)
class Candidate:
    """One column set's validation figures against the baseline."""

    variant: str
    columns: int
    overall: PairedDifference
    slices: dict[str, PairedDifference]  # slice -> its estimate (slices without paired users left out)
    helps: bool
    blocked_by: str = ""  # why the set does not qualify ("" when it does)

    @property
    def difference(self) -> float:
        return self.overall.difference

    @property
    def mean(self) -> float:
        return self.overall.mean

    @property
    def standard_error(self) -> float:
        return self.overall.standard_error

    def as_dict(self) -> dict:
        return {
            "variant": self.variant,
            "columns": self.columns,
            "helps": self.helps,
            "blocked_by": self.blocked_by,
            "mean": self.mean,
            "difference": self.difference,
            "standard_error": self.standard_error,
            "overall": self.overall.as_dict(),
            "slices": {
                name: estimate.as_dict() | {"lower_bound": slice_lower_bound(estimate)}
                for name, estimate in self.slices.items()
            },
        }


@dataclass(frozen=True)
class Recommendation:
    variant: str
    helps: bool  # False: no set beat the baseline beyond the noise without harming a slice
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    more_data: str = ""  # how much more data would decide, when nothing qualified

    def as_dict(self) -> dict:
        return {
            "variant": self.variant,
            "helps": self.helps,
            "reason": self.reason,
            "more_data": self.more_data,
            "candidates": [c.as_dict() for c in self.candidates],
        }


Z_ONE_SIDED = 1.645  # the slices' non-inferiority test: one-sided 95%


def _harm_floor(estimate: PairedDifference, harm_margin: float) -> float:
    return -harm_margin * estimate.baseline_mean


def slice_lower_bound(estimate: PairedDifference) -> float:
    """The one-sided 95% lower bound of a slice's difference, which must clear the harm floor."""
    return estimate.difference - Z_ONE_SIDED * estimate.standard_error


def _judge(overall: PairedDifference, slices: dict[str, PairedDifference], min_users: int, harm_margin: float) -> str:
    """ "" when the set qualifies, else why not."""
    if overall.outcome != "passed":
        return f"all validation users: {overall.reason}"
    for name, estimate in slices.items():
        floor = _harm_floor(estimate, harm_margin)
        low = slice_lower_bound(estimate)
        if estimate.users >= min_users and low <= floor:
            return f"{name} users: one-sided 95% lower bound {low:+.4f} is below the harm floor {floor:+.4f}"
    return ""


def _more_data(candidates: list[Candidate], min_users: int, harm_margin: float) -> str:
    """The closest candidate, and the users that would decide it if its difference is real."""
    hopeful = [c for c in candidates if c.difference > 0]
    if not hopeful:
        return "no column set was ahead of the baseline on validation; more data is unlikely to change that"
    best = max(hopeful, key=lambda c: c.difference / c.standard_error if c.standard_error else 0.0)
    blocking = best.overall
    where = "validation users"
    if best.overall.outcome == "passed":  # blocked by a slice: that slice needs the users
        name, blocking = min(
            ((n, e) for n, e in best.slices.items() if e.users >= min_users),
            key=lambda item: slice_lower_bound(item[1]) - _harm_floor(item[1], harm_margin),
        )
        where = f"{name} validation users"
    needed = blocking.users_needed
    if best.overall.outcome == "passed" and blocking.difference > _harm_floor(blocking, harm_margin):
        # the interval must shrink above the harm floor: users for (z + z_power) SE < difference - floor
        gap = blocking.difference - _harm_floor(blocking, harm_margin)
        needed = int(blocking.users * ((Z_ONE_SIDED + Z_POWER) * blocking.standard_error / gap) ** 2) + 1
    elif blocking.difference <= 0:
        needed = None
    if needed is None:
        return (
            f"`{best.variant}` helps overall ({best.overall.describe()}), but the {where} are behind by more than "
            f"the {harm_margin:.0%} harm margin so far ({blocking.describe()}): as measured that is harm, and only "
            "more of them could show it is noise"
        )
    return (
        f"closest: `{best.variant}`, {blocking.describe()}; if that difference is real, about {needed} {where} "
        f"({needed / max(blocking.users, 1):.1f}x today's {blocking.users}) would decide it"
    )


def recommend(
    valid: pd.DataFrame,
    column_counts: dict[str, int],
    slices: dict[str, Collection[str]] | None = None,
    baseline: str = "none",
    min_users: int = 20,
    harm_margin: float = 0.05,
    otherwise: str = "serve none of the plugin's columns for this data",
) -> Recommendation:
    """Pick the column set to serve from per-user validation values.

    Args:
        valid: variant, seed, user_id, value (one validation metric per user and seed, e.g. NDCG@10).
        column_counts: variant -> number of columns (smaller wins near-ties).
        slices: name -> validation users of a population that must not be harmed (e.g. returning, new).
        baseline: the variant without the plugin's columns.
        min_users: fewer paired users than this cannot qualify a set; a smaller slice is not judged.
        harm_margin: a slice may be harmed when its one-sided 95% lower bound is below -harm_margin x the
            baseline's mean there.
        otherwise: the advice when no set qualifies.
    """
    if valid[valid.variant == baseline].empty:
        raise ValueError(f"no validation values for the baseline {baseline!r}")
    candidates = []
    for variant in dict.fromkeys(valid.variant):
        if variant == baseline:
            continue
        overall = paired_difference(valid, variant, baseline, min_users=min_users)
        if overall is None:
            continue
        judged = {}
        for name, users in (slices or {}).items():
            estimate = paired_difference(valid, variant, baseline, users, min_users=min_users)
            if estimate is not None:
                judged[name] = estimate
        blocked = _judge(overall, judged, min_users, harm_margin)
        candidates.append(Candidate(variant, column_counts.get(variant, 0), overall, judged, not blocked, blocked))
    passing = [c for c in candidates if c.helps]
    if not passing:
        return Recommendation(
            baseline,
            False,
            "no column set beat the baseline on validation beyond the noise without risking harm to a slice "
            f"(paired over users and seeds; harm = a loss beyond {harm_margin:.0%} not excluded): {otherwise}",
            candidates,
            _more_data(candidates, min_users, harm_margin),
        )
    best = max(passing, key=lambda c: c.difference)
    near = [c for c in passing if c.difference >= best.difference - best.standard_error]
    chosen = min(near, key=lambda c: (c.columns, -c.difference))
    reason = f"validation over {baseline}: {chosen.overall.describe()}"
    if chosen is not best:
        reason += f"; the smallest set within one standard error of the best ({best.variant})"
    return Recommendation(chosen.variant, True, reason, candidates)
