"""The deployment guard: ship the richest student that earns its place against its baselines where it is used.

The served student ranks, for each user, the items after the snapshot's cutoff from the history before it. The
guard asks the same question inside the training period (`GuardConfig`): a validation cutoff leaves the newest
`valid_fraction` of the training interactions after it; each candidate trains on what lies before it (its epochs
picked there) and is scored on the first item(s) each user touched after it, ranked over the whole catalogue.
Candidates, richest first: the configured student, the same without item content, plain SASRec; then the popularity
prior. The first candidate that passes against what would ship instead (paired per-user NDCG@10 differences, one-sided
lower confidence bounds) ships: it must be better than most-popular (bound above zero), and better than plain
SASRec when plain SASRec itself beats most-popular (`choose_variant`): a trained model ships only where it shows a
gain over what would ship instead, else the simpler model, and in the end the popularity prior, does (a 5%
non-inferiority margin against most-popular shipped plain SASRec 2.7% below it on sample-noisy's test).
Non-inferiority tests (bound above -margin x the baseline) run again on the users with short histories before the
validation cutoff (evaluate's cold
slice) when they are enough to test and a minority the average could hide: a model that wins on average by hurting
its newest users does not ship. Most-popular weighs interactions by age where that ranks the validation items better
(`student/popularity.py`: drift makes all-time counts a weak baseline), and the popularity prior ships with the same
weighting. Each trained candidate is judged with the trending prior that ranks its validation items best (its scores
plus w x log(1 + those counts), w among 0 and `prior_weights`, kept only when its gain over none is shown): SASRec
cannot know what is new, the counts can; the shipped student's item biases carry it. The winner is refitted on every
interaction before the training cutoff for its validated number of epochs. The decision and its figures are kept
(`GuardDecision`) for the job summary, the checkpoint manifest and the served `student_variant`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np
import torch

from profile_features.metrics import ndcg_of_ranks
from profile_features.student.config import GuardConfig, StudentConfig
from profile_features.student.evaluation import blended_target_ranks, metrics_from_ranks
from profile_features.student.popularity import decayed_counts, half_life_candidates, newest_time
from profile_features.student.sources import (
    BeforeCutoff,
    TrainingUsers,
    ValidationTargets,
    after_cutoff_targets,
    interaction_time_quantile,
)
from profile_features.student.training import FitResult, finalize, fit, popularity_ranks, source_stats

__all__ = [
    "CONFIGURED",
    "WITHOUT_CONTENT",
    "PLAIN",
    "POPULARITY",
    "ALL_USERS",
    "SHORT_HISTORY",
    "Check",
    "Candidate",
    "GuardDecision",
    "per_user_ndcg",
    "paired_check",
    "guard_checks",
    "checks_short_slice",
    "variant_chain",
    "choose_variant",
    "guarded_fit",
]

CONFIGURED, WITHOUT_CONTENT, PLAIN, POPULARITY = "configured", "without_item_content", "plain_sasrec", "popularity"
ALL_USERS, SHORT_HISTORY = "all", "short_history"
# Plain SASRec as evaluate's comparison trains it: IDs only, no distillation, no crops.
PLAIN_OVERRIDES = {
    "items": {"id": True, "text": False, "sid": False},
    "distill": {"enabled": False},
    "neighbours": {"enabled": False},
    "train": {"crop_prob": 0.0},
}
WITHOUT_CONTENT_OVERRIDES = {"items": {"id": True, "text": False, "sid": False}}


@dataclass(frozen=True)
class Check:
    """One non-inferiority test: candidate against a baseline on the same validation users."""

    baseline: str
    users: int
    candidate_ndcg: float
    baseline_ndcg: float
    difference: float  # mean paired difference (candidate - baseline)
    lower_bound: float  # one-sided lower confidence bound of `difference`
    threshold: float  # -margin x baseline_ndcg: the harm tolerated (0 with needs_gain: the bound must exceed it)
    passed: bool
    slice: str = ALL_USERS  # which validation users: all, or those with a short history (SHORT_HISTORY)
    needs_gain: bool = False  # a superiority test (lower bound above zero), not non-inferiority

    def describe(self) -> str:
        if self.needs_gain:
            verdict = "better" if self.passed else "gain not shown"
        else:
            verdict = "not worse" if self.passed else "harm not excluded"
        needs = f"{'>' if self.needs_gain else '>='} {self.threshold:+.4f}"
        where = "" if self.slice == ALL_USERS else f" ({self.slice} users)"
        return (
            f"vs {self.baseline}{where}: {self.candidate_ndcg:.4f} vs {self.baseline_ndcg:.4f}, difference "
            f"{self.difference:+.4f}, lower bound {self.lower_bound:+.4f} (needs {needs}, "
            f"{self.users} users): {verdict}"
        )


@dataclass(frozen=True)
class Candidate:
    """A variant trained before the validation cutoff."""

    variant: str
    best_epoch: int
    epochs_run: int
    seconds: float
    valid_ndcg: float
    checks: list[Check] = field(default_factory=list)
    prior_weight: float = 0.0  # the trending prior's weight validated for it (GuardConfig.prior_weights)
    distill_until: int | None = None  # its last distillation epoch (FitResult.distill_until), what a refit replays

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


@dataclass(frozen=True)
class GuardDecision:
    """Which variant ships and why (serialised into the job summary and the checkpoint manifest)."""

    variant: str
    reason: str
    validation_cutoff: int | None  # in the training users' time units (epoch microseconds from Spark)
    valid_fraction: float
    validation_users: int
    eligible_users: int
    popularity_ndcg: float | None
    confidence: float
    margin: float
    candidates: list[Candidate]
    refit_epochs: int
    seconds: float = 0.0
    # The most-popular baseline and fallback weigh each interaction 0.5 ** (age / half-life), the half-life
    # chosen on validation (student/popularity.py), in the times' units and as a multiple of the validation
    # window's length; None: all-time counts.
    popularity_half_life: float | None = None
    popularity_half_life_windows: float | None = None
    # Validation users with at most `GuardConfig.short_history` interactions before the validation cutoff; every
    # check is repeated on them when they are at least `min_users` and at most half (`checks_short_slice`).
    short_history_users: int = 0
    # The trending prior added to the shipped student's item biases: this weight x log(1 + the most-popular
    # counts above, at the training cutoff); 0: none (GuardConfig.prior_weights).
    prior_weight: float = 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        for cand, raw in zip(self.candidates, out["candidates"]):
            raw["passed"] = cand.passed
        return out

    def describe(self) -> str:
        lines = [f"shipped {self.variant}: {self.reason}"]
        for cand in self.candidates:
            prior = f", trending prior x {cand.prior_weight:g}" if cand.prior_weight else ""
            lines.append(f"  {cand.variant} (best epoch {cand.best_epoch}, valid NDCG@10 {cand.valid_ndcg:.4f}{prior})")
            lines += [f"    {check.describe()}" for check in cand.checks]
        return "\n".join(lines)


def per_user_ndcg(ranks: np.ndarray, owner: np.ndarray, users: int, k: int = 10) -> np.ndarray:
    """[users] mean NDCG@k over each user's targets, from 0-based ranks [R] and owner rows [R]."""
    gains = ndcg_of_ranks(ranks, k)
    totals = np.bincount(owner, weights=gains, minlength=users)
    return totals / np.maximum(np.bincount(owner, minlength=users), 1)


def paired_check(
    candidate: np.ndarray,
    baseline: np.ndarray,
    name: str,
    guard: GuardConfig,
    slice_name: str = ALL_USERS,
    needs_gain: bool = False,
) -> Check:
    """Whether `candidate` [U] is not worse than `baseline` [U] (per-user scores, paired), or with
    `needs_gain` whether it is better.

    Passes when the one-sided `guard.confidence` lower bound of the mean paired difference (normal
    approximation, standard error from the differences) is at least -`guard.margin` x the baseline's
    mean (with `needs_gain`: above zero), over at least `guard.min_users` users. Too few users, or
    differences too noisy to bound the harm, fail: the check has to be able to fail, so no power means
    no evidence, and the simpler model.
    """
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = len(diff)
    mean = float(diff.mean()) if n else 0.0
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    lower = mean - NormalDist().inv_cdf(guard.confidence) * se if np.isfinite(se) else float("-inf")
    base = float(np.mean(baseline)) if n else 0.0
    threshold = 0.0 if needs_gain else -guard.margin * base
    return Check(
        baseline=name,
        users=n,
        candidate_ndcg=float(np.mean(candidate)) if n else 0.0,
        baseline_ndcg=base,
        difference=mean,
        lower_bound=lower,
        threshold=threshold,
        passed=n >= guard.min_users and (lower > threshold if needs_gain else lower >= threshold),
        slice=slice_name,
        needs_gain=needs_gain,
    )


def guard_checks(
    candidate: np.ndarray,
    baseline: np.ndarray,
    name: str,
    guard: GuardConfig,
    short: np.ndarray | None = None,
    needs_gain: bool = False,
) -> list[Check]:
    """Non-inferiority (or with `needs_gain` superiority) on every validation user, and non-inferiority again
    on the short-history ones (`short`, a [U] mask) when `checks_short_slice` says they are a minority the
    average could hide: the slice guards against hidden harm, a gain is the whole population's to show."""
    checks = [paired_check(candidate, baseline, name, guard, needs_gain=needs_gain)]
    if checks_short_slice(short, guard):
        checks.append(paired_check(candidate[short], baseline[short], name, guard, SHORT_HISTORY))
    return checks


def checks_short_slice(short: np.ndarray | None, guard: GuardConfig) -> bool:
    """Whether the short-history users get their own check: at least `guard.min_users` of them (fewer cannot
    bound the harm; failing every model for it would only say the slice is small) and at most half of the
    validation users (a majority cannot be hidden by the average; checking it twice only tests the same users
    again: on amazon-digital-music, 121 of 155, it sent a student that passed overall to the popularity prior,
    which then scored 40% below plain SASRec on test)."""
    count = 0 if short is None else int(short.sum())
    return count >= guard.min_users and 2 * count <= len(short)


def _with(cfg: StudentConfig, overrides: dict) -> StudentConfig:
    raw = cfg.model_dump()
    for section, values in overrides.items():
        raw[section].update(values)
    return StudentConfig.model_validate(raw)


def variant_chain(cfg: StudentConfig, has_content: bool, has_profiles: bool) -> list[tuple[str, StudentConfig]]:
    """The candidates, richest first, each differing from the next by one component; plain SASRec last.

    Args:
        has_content: the training data brings item text vectors or semantic-ID codes the config reads.
        has_profiles: the training data brings profile vectors (distillation has a target).
    """

    def effective(c: StudentConfig) -> dict:  # what changes the model trained on this data
        raw = c.model_dump(exclude={"name", "guard"})
        if not has_content:
            raw["items"].update(text=False, sid=False, id_dropout=0.0, adapter_init="pca", fusion="sum")
        if not has_profiles:
            raw["distill"] = raw["neighbours"] = None
        return raw

    chain = [
        (CONFIGURED, cfg),
        (WITHOUT_CONTENT, _with(cfg, WITHOUT_CONTENT_OVERRIDES)),
        (PLAIN, _with(cfg, PLAIN_OVERRIDES)),
    ]
    out: list[tuple[str, StudentConfig]] = []
    for name, c in chain:
        if out and effective(out[-1][1]) == effective(c):
            out[-1] = (name if name == PLAIN else out[-1][0], c if name == PLAIN else out[-1][1])
            continue
        out.append((name, c))
    return out


def choose_variant(
    names: list[str],
    scores_of: Callable[[str], np.ndarray],
    popular: np.ndarray,
    guard: GuardConfig,
    judged: Callable[[str, list[Check]], None] = lambda name, checks: None,
    short: np.ndarray | None = None,
) -> tuple[str | None, str]:
    """The variant to ship among `names` (richest first, plain SASRec last), or None for most-popular.

    Plain SASRec is judged first, against most-popular. A richer candidate ships when it beats most-popular
    (`guard.popular_needs_gain`; else is not worse than it) and, if plain SASRec itself would ship, beats plain
    SASRec (`guard.richer_needs_gain`; else is not worse): the comparison is with what would ship instead, and a
    component ships only where it earns its place. When plain SASRec does not pass against most-popular,
    most-popular is the fallback a richer candidate must pass against. `scores_of` trains lazily: the chain
    stops at the first candidate that ships. `judged(name, checks)` is told each candidate's checks in order.
    `short` ([U] bool) marks the short-history users, whose slice every comparison must also pass
    (`guard_checks`: a non-inferiority test there).

    Returns:
        (the shipped name or None, the reason in words).
    """
    who = f"{len(popular)} validation users"
    if checks_short_slice(short, guard):
        who += f" and the {int(short.sum())} of them with short histories"
    than_popular = "better than" if guard.popular_needs_gain else "not worse than"
    plain = names[-1]
    plain_scores = scores_of(plain)
    plain_checks = guard_checks(plain_scores, popular, POPULARITY, guard, short, guard.popular_needs_gain)
    plain_passed = all(check.passed for check in plain_checks)
    judged_names = []
    for name in names:
        if name == plain:
            checks = plain_checks
        else:
            gain = guard.richer_needs_gain
            checks = guard_checks(scores_of(name), plain_scores, PLAIN, guard, short, gain) if plain_passed else []
            checks += guard_checks(scores_of(name), popular, POPULARITY, guard, short, guard.popular_needs_gain)
        judged(name, checks)
        if all(check.passed for check in checks):
            if name == plain:
                reason = f"{than_popular} most-popular on {who}"
            elif plain_passed:
                than_plain = "better than" if guard.richer_needs_gain else "not worse than"
                reason = f"{than_plain} plain SASRec and {than_popular} most-popular on {who}"
            else:
                reason = (
                    f"{than_popular} most-popular on {who}, the fallback: plain SASRec was not shown {than_popular} it"
                )
            if judged_names:
                reason += "; richer variants failed their checks: " + ", ".join(judged_names)
            return name, reason
        judged_names.append(name)
    return None, f"no trained variant was shown {than_popular} most-popular on validation"


def guarded_fit(
    cfg: StudentConfig, data: TrainingUsers, log: Callable[[str], None] | None = logging.getLogger(__name__).info
) -> tuple[FitResult, GuardDecision]:
    """Pick the variant to ship on post-cutoff validation and train it on all of `data`.

    Args:
        cfg: the configured student (`cfg.guard` says how to validate and decide).
        data: every training user, with interaction times (`UserChunk.times`).

    Returns:
        (the shipped model's `FitResult`, with best_valid / popularity_valid from validation; the decision).
    """
    guard = cfg.guard
    started = time.perf_counter()
    cutoff = interaction_time_quantile(data, 1.0 - guard.valid_fraction, seed=cfg.train.seed)
    newest = newest_time(data)
    window = newest - cutoff  # the validation window's length: the popularity half-lives' scale
    early = BeforeCutoff(data, cutoff)
    limit = max(1, cfg.train.max_valid_users // guard.targets_per_user)
    targets: ValidationTargets = after_cutoff_targets(data, cutoff, guard.targets_per_user, limit, cfg.train.seed)
    features = getattr(data, "item_features", None)
    has_content = features is not None and (
        (features.text_dim > 0 and cfg.content_views.text is not False) or (bool(features.code_sizes) and cfg.items.sid)
    )
    has_profiles = data.profile_dim > 0
    short = np.array([0 < guard.short_history and len(seq) <= guard.short_history for seq in targets.inputs], bool)
    chain = variant_chain(cfg, has_content, has_profiles) if guard.enabled else [(CONFIGURED, cfg)]
    say = log or (lambda _: None)

    def decision(variant, reason, candidates, pop, epochs, half_life=None, prior_weight=0.0) -> GuardDecision:
        windows = None if half_life is None or not window else half_life / window
        return GuardDecision(
            variant, reason, cutoff, guard.valid_fraction, len(targets.users), targets.eligible, pop,
            guard.confidence, guard.margin, candidates, epochs, time.perf_counter() - started, half_life, windows,
            int(short.sum()), prior_weight,
        )  # fmt: skip

    if not targets.users:
        # Nobody is active on both sides: nothing can select epochs or show a model beats most-popular.
        plain_cfg = chain[-1][1]
        result = fit(plain_cfg, data, None, log=log, stop_after=guard.unvalidated_epochs, popularity_fallback=False)
        if guard.enabled:
            _rank_by_popularity(result, data)
            reason = "no user has interactions on both sides of the validation cutoff: nothing to validate on"
            return result, decision(POPULARITY, reason, [], None, guard.unvalidated_epochs)
        return result, decision(CONFIGURED, "guard disabled; nothing to validate on", [], None, result.best_epoch)

    inputs, flat_targets, owner = targets.pairs()
    valid = (inputs, flat_targets)
    users = len(targets.users)
    half_life, pop_counts, pop_ranks, popular = _validated_popularity(early, cutoff, window, flat_targets, owner)
    prior = np.log1p(pop_counts)  # what is trending at the validation cutoff, by the validated weighting
    weights = [0.0, *sorted(set(guard.prior_weights))]  # validated like the epochs, guard on or off
    say(
        f"[guard] validation cutoff {cutoff}: {users} users with items after it (of {targets.eligible} "
        f"eligible, {int(short.sum())} with at most {guard.short_history} interactions before it); most-popular "
        f"NDCG@10 {popular.mean():.4f} ({_describe_half_life(half_life, window)})"
    )
    fitted: dict[str, tuple[FitResult, np.ndarray, float]] = {}

    def train(name: str, c: StudentConfig) -> tuple[FitResult, np.ndarray, float]:
        if name not in fitted:
            res = fit(c, early, valid, log=log, popularity_fallback=False)
            scores, weight = _with_trending_prior(res, inputs, flat_targets, owner, prior, weights, guard.confidence)
            if weight:
                say(f"[guard] {name}: trending prior x {weight:g} on validation ({scores.mean():.4f})")
            fitted[name] = (res, scores, weight)
        return fitted[name]

    def candidate(name: str, checks: list[Check]) -> Candidate:
        res, scores, weight = fitted[name]
        return Candidate(
            name, res.best_epoch, len(res.history), res.seconds, float(scores.mean()), checks, weight, res.distill_until
        )

    candidates: list[Candidate] = []
    shipped, reason = None, ""
    if not guard.enabled:
        train(CONFIGURED, cfg)
        candidates.append(candidate(CONFIGURED, []))
        shipped, reason = CONFIGURED, "guard disabled: the configured student ships, its epochs validated"
    else:

        def scores_of(name: str) -> np.ndarray:
            return train(name, dict(chain)[name])[1]

        def judged(name: str, checks: list[Check]) -> None:
            candidates.append(candidate(name, checks))
            say(f"[guard] {name}: " + "; ".join(check.describe() for check in checks))

        shipped, reason = choose_variant([name for name, _ in chain], scores_of, popular, guard, judged, short)
    if shipped is None:
        res, _, _ = fitted[chain[-1][0]]
        _rank_by_popularity(res, data, newest, half_life)
        res.best_valid = res.popularity_valid = metrics_from_ranks(pop_ranks).as_dict()
        say(f"[guard] shipping the popularity prior ({_describe_half_life(half_life, window)}): {reason}")
        return res, decision(POPULARITY, reason, candidates, float(popular.mean()), res.best_epoch, half_life)
    validated, _, prior_weight = fitted[shipped]
    epochs = max(validated.best_epoch, 1)
    say(f"[guard] shipping {shipped}: refit on every training interaction for {epochs} epochs")
    replay = Replay(epochs, validated.distill_until, prior_weight, half_life)
    final = replay_fit(dict(chain)[shipped], data, replay, log, newest)
    if prior_weight:
        say(f"[guard] the shipped item biases carry the trending prior x {prior_weight:g}")
    final.best_epoch = validated.best_epoch
    final.best_valid = validated.best_valid
    final.popularity_valid = metrics_from_ranks(pop_ranks).as_dict()
    return final, decision(shipped, reason, candidates, float(popular.mean()), epochs, half_life, prior_weight)


@dataclass(frozen=True)
class Replay:
    """A validated run, repeated on all the training data: its epochs, its switch to L_rec alone and its
    trending prior (weight, and the popularity half-life it weighs counts by; None: all-time counts)."""

    epochs: int
    distill_until: int | None
    prior_weight: float = 0.0
    half_life: float | None = None

    @classmethod
    def recorded(cls, guard: dict | None, variant: str, with_prior: bool = True) -> Replay | None:
        """The replay of `variant` from a recorded decision (`GuardDecision.as_dict()`, as in a checkpoint's
        manifest); None when the guard did not train that variant or predates `distill_until`."""
        run = next((c for c in (guard or {}).get("candidates", []) if c.get("variant") == variant), None)
        if run is None or run.get("distill_until") is None:
            return None
        weight = float(run.get("prior_weight") or 0.0) if with_prior else 0.0
        return cls(max(int(run["best_epoch"]), 1), run["distill_until"], weight, guard.get("popularity_half_life"))


def replay_fit(
    cfg: StudentConfig,
    data: TrainingUsers,
    replay: Replay,
    log: Callable[[str], None] | None = None,
    newest: int | None = None,
) -> FitResult:
    """Train `cfg` on every user of `data` as a validated run went: `replay.epochs` epochs with distillation up to
    the same epoch, then the trending prior added to the item biases (how the guard refits what it ships).
    `newest`: the data's latest interaction time when the caller knows it (else read from `data` if needed)."""
    final = fit(
        cfg,
        data,
        None,
        log=log,
        stop_after=replay.epochs,
        popularity_fallback=False,
        distill_until=replay.distill_until,
    )
    if replay.prior_weight:
        if newest is None:
            newest = newest_time(data) if replay.half_life is not None else 0  # all-time counts need no clock
        _add_trending_prior(final.model, data, newest, replay.half_life, replay.prior_weight)
    return final


def _validated_popularity(early: TrainingUsers, cutoff: int, window: int, targets: list[int], owner: np.ndarray):
    """(half-life or None, counts [N], target ranks, per-user NDCG@10) of the most-popular baseline that ranks
    the validation targets best: counts before `cutoff`, each interaction weighted by its age at the cutoff,
    for each half-life among `half_life_candidates(window)` (all-time first; a later one must do better)."""
    users = int(owner.max()) + 1 if len(owner) else 0
    half_lives = half_life_candidates(window)
    best = None
    for half_life, counts in zip(half_lives, decayed_counts(early, cutoff, half_lives)):
        ranks = popularity_ranks(counts, targets)
        per_user = per_user_ndcg(ranks, owner, users)
        if best is None or per_user.mean() > best[3].mean():
            best = (half_life, counts, ranks, per_user)
    return best


def _with_trending_prior(
    result: FitResult,
    inputs: list[list[int]],
    targets: list[int],
    owner: np.ndarray,
    prior: np.ndarray,
    weights: list[float],
    confidence: float,
) -> tuple[np.ndarray, float]:
    """(per-user NDCG@10, weight) of the validated model's scores plus weight x `prior`: the weight among
    `weights` (0 first) that ranks the validation targets best, kept only when its gain over weight 0 is shown:
    the one-sided lower confidence bound of the paired per-user gain is above zero, at `confidence` split over
    the weights tried (Bonferroni: the best of several is picked on the same users). Else weight 0."""
    users = int(owner.max()) + 1 if len(owner) else 0
    if len(weights) == 1:
        return per_user_ndcg(result.best_ranks, owner, users), 0.0
    ranks = blended_target_ranks(result.model, inputs, targets, prior, weights)
    scores = [per_user_ndcg(row, owner, users) for row in ranks]
    best = int(np.argmax([s.mean() for s in scores]))  # the first of equals: 0 wins ties
    gain = scores[best] - scores[0]
    if best == 0 or len(gain) < 2:
        return scores[0], 0.0
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / (len(weights) - 1))
    lower = gain.mean() - z * gain.std(ddof=1) / np.sqrt(len(gain))
    return (scores[best], float(weights[best])) if lower > 0 else (scores[0], 0.0)


@torch.no_grad()
def _add_trending_prior(model, data: TrainingUsers, newest: int, half_life: float | None, weight: float) -> None:
    """Add weight x log(1 + counts at `newest`, weighted by `half_life`) to the items' own biases: the trending
    prior validated with the model, at the training cutoff (items training never saw keep theirs: no count)."""
    counts = decayed_counts(data, newest, [half_life])[0]
    model.head.bias.add_(
        weight * torch.log1p(torch.as_tensor(counts, device=model.device, dtype=model.head.bias.dtype))
    )


def _describe_half_life(half_life: float | None, window: float) -> str:
    if half_life is None:
        return "all-time counts"
    return f"counts halved every {half_life / window:g} x the validation window"


def _rank_by_popularity(
    result: FitResult, data: TrainingUsers, newest: int | None = None, half_life: float | None = None
) -> None:
    """Turn `result.model` into the popularity prior over every training interaction (weighted by age at
    `newest`, the latest interaction, when `half_life` is given), finalized on `data`."""
    model = result.model
    counts = decayed_counts(data, newest or 0, [half_life])[0]
    model.head.rank_by_popularity(torch.as_tensor(counts, device=model.device))
    finalize(model, data)
    result.ranks_by_popularity = True
    result.data = source_stats(data)
