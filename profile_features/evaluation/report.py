"""The evaluation report: Markdown tables, PNG plots, and the raw results as CSV.

Input is two long frames from every ranker, so adding a ranker adds rows, not code: slice
means (model, variant, seed, slice, metric, value, users) for the tables and plots, and
per-user values (model, variant, seed, slice, metric, user_id, value) for every check,
goal and comparison, which are paired over users and seeds with 95% intervals and say
passed, failed or inconclusive (statistics.py). Each model's first variant is its
baseline (the ranker without the plugin's inputs); lifts are relative to it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.evaluation.gbdt import ALL_SEMANTIC, ITEM_TEXT_ONLY, STUDENT_OVER_ITEM_TEXT
from profile_features.evaluation.html import render_html
from profile_features.evaluation.statistics import paired_difference

__all__ = [
    "GOALS",
    "summarise",
    "slice_rows",
    "estimate",
    "comparisons",
    "acceptance_checks",
    "check_counts",
    "goal_checks",
    "control_comparisons",
    "write_report",
]

# (model, variant with the plugin, slice) -> required NDCG@10 lift over the model's baseline.
GOALS = {("lightgbm", ALL_SEMANTIC, "all"): 0.03, ("lightgbm", ALL_SEMANTIC, "cold"): 0.10}


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=1, 0 for one seed) per model, slice, variant and metric; lift of the
    mean over the model's baseline variant in the same slice."""
    grouped = results.groupby(["model", "slice", "variant", "metric"], sort=False)
    table = grouped.value.agg(
        mean="mean", std=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0, seeds="count"
    ).reset_index()
    table["users"] = grouped.users.max().to_numpy()
    baseline_variant = results.groupby("model", sort=False).variant.first()
    base = table[table.variant == table.model.map(baseline_variant)].set_index(["model", "slice", "metric"])["mean"]
    keys = pd.MultiIndex.from_frame(table[["model", "slice", "metric"]])
    table["lift"] = table["mean"].to_numpy() / base.reindex(keys).to_numpy() - 1
    return table


def slice_rows(frame: pd.DataFrame, model: str, metric: str, slices: dict[str, Collection[str]]) -> pd.DataFrame:
    """Per-user values (variant, seed, user_id, value) of one model and metric, one row per slice a user is in:
    the long per-user frame the checks read (model, variant, seed, slice, metric, user_id, value)."""
    parts = [
        frame[frame.user_id.isin(set(users))].assign(model=model, slice=name, metric=metric)
        for name, users in slices.items()
    ]
    columns = ["model", "variant", "seed", "slice", "metric", "user_id", "value"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def estimate(
    per_user: pd.DataFrame, model: str, variant: str, baseline: str, slice_name: str, metric: str, min_users: int = 30
) -> dict | None:
    """`statistics.paired_difference` of `variant` over `baseline` for one model, slice and metric, as a dict
    with those keys; None when the two share no user."""
    rows = per_user[(per_user.model == model) & (per_user.slice == slice_name) & (per_user.metric == metric)]
    found = paired_difference(rows, variant, baseline, min_users=min_users)
    if found is None:
        return None
    return {
        "model": model,
        "variant": variant,
        "baseline": baseline,
        "slice": slice_name,
        "metric": metric,
        **found.as_dict(),
    }


def _baselines(per_user: pd.DataFrame) -> dict[str, str]:
    return per_user.groupby("model", sort=False).variant.first().to_dict()


def comparisons(per_user: pd.DataFrame, min_users: int = 30) -> list[dict]:
    """Every variant against its model's baseline (first variant), per slice, on the model's decision metric."""
    out = []
    for model, baseline in _baselines(per_user).items():
        rows = per_user[per_user.model == model]
        for slice_name in dict.fromkeys(rows.slice):
            for metric in dict.fromkeys(rows.metric):
                for variant in dict.fromkeys(rows.variant):
                    if variant != baseline:
                        found = estimate(per_user, model, variant, baseline, slice_name, metric, min_users)
                        if found is not None:
                            out.append(found)
    return out


def acceptance_checks(
    per_user: pd.DataFrame, recommended: str | None, min_users: int = 30, tower: str | None = None
) -> list[dict]:
    """What must hold on any data, per slice: the recommended LightGBM column set against behaviour only
    (NDCG@10); the recommended two-tower inputs against ID-only towers (Recall@50, what they are chosen on);
    the student against most-popular and plain SASRec (NDCG@10). Each is passed (95% interval above zero),
    failed (below) or inconclusive; only passed counts."""
    from profile_features.evaluation.rankers.two_tower import SELECT_METRIC, VARIANTS
    from profile_features.evaluation.student_quality import MOST_POPULAR, PLAIN, STUDENT

    tower_baseline = next(iter(VARIANTS))
    wanted = [
        ("lightgbm", recommended, "none", "recommended column set vs behaviour only", "ndcg@10"),
        ("two_tower", tower, tower_baseline, "recommended two-tower inputs vs ID only", SELECT_METRIC),
        ("student", STUDENT, MOST_POPULAR, "student vs most popular", "ndcg@10"),
        ("student", STUDENT, PLAIN, "student vs plain SASRec", "ndcg@10"),
    ]
    out = []
    for model, variant, baseline, name, metric in wanted:
        if variant is None or variant == baseline:
            continue
        for slice_name in dict.fromkeys(per_user[per_user.model == model].slice):
            found = estimate(per_user, model, variant, baseline, slice_name, metric, min_users)
            if found is not None:
                out.append(found | {"check": name, "passed": found["outcome"] == "passed"})
    return out


def check_counts(checks: list[dict]) -> dict[str, int]:
    """How many checks passed, failed and were inconclusive."""
    return {word: sum(c["outcome"] == word for c in checks) for word in ("passed", "failed", "inconclusive")}


def goal_checks(per_user: pd.DataFrame, metric: str = "ndcg@10", min_users: int = 30) -> list[dict]:
    """Each goal: met when the mean lift reaches it AND the paired difference's 95% interval is above zero."""
    checks = []
    baselines = _baselines(per_user)
    for (model, variant, slice_name), goal in GOALS.items():
        if model not in baselines:
            continue
        found = estimate(per_user, model, variant, baselines[model], slice_name, metric, min_users)
        if found is not None:
            checks.append(found | {"goal": goal, "met": bool(found["lift"] >= goal and found["outcome"] == "passed")})
    return checks


def control_comparisons(per_user: pd.DataFrame, min_users: int = 30) -> list[dict]:
    """Each set that adds to item content against the item-text-only control, per slice."""
    out = []
    rows = per_user[per_user.model == "lightgbm"]
    for variant in (ALL_SEMANTIC, STUDENT_OVER_ITEM_TEXT):
        for slice_name in dict.fromkeys(rows.slice):
            found = estimate(per_user, "lightgbm", variant, ITEM_TEXT_ONLY, slice_name, "ndcg@10", min_users)
            if found is not None:
                out.append(found)
    return out


def _control_lines(per_user: pd.DataFrame, min_users: int) -> list[str]:
    """Sets that add to the item-text-only control: what the user side, and the student, add."""
    found = control_comparisons(per_user, min_users)
    if not found:
        return []
    lines = [
        "## What the user side and the student add over item content (LightGBM)",
        "",
        f"Against `{ITEM_TEXT_ONLY}` (the item PCA columns and item cluster, which need no user profile), "
        f"paired over users and seeds: `{ALL_SEMANTIC}` (everything), and `{STUDENT_OVER_ITEM_TEXT}` (the control "
        "plus the student's columns and the items' semantic-ID codes).",
        "",
        "| column set | slice | users x seeds | NDCG@10 lift | difference | 95% interval | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['variant']} | {c['slice']} | {c['users']} x {c['seeds']} | {_pct(c['lift'], signed=True)} | "
        f"{c['difference']:+.4f} | {_interval(c)} | {c['outcome']} |"
        for c in found
    ]
    return lines + [""]


def _interval(c: dict) -> str:
    return f"{c['low']:+.4f} .. {c['high']:+.4f}"


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def _metric_table(summary: pd.DataFrame, model: str, slice_name: str) -> list[str]:
    part = summary[(summary.model == model) & (summary.slice == slice_name)]
    metrics = list(dict.fromkeys(part.metric))
    lines = [
        "| variant | users | " + " | ".join(metrics) + " | NDCG@10 lift |",
        "|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for variant, rows in part.groupby("variant", sort=False):
        rows = rows.set_index("metric")
        cells = [f"{_fmt(rows.at[m, 'mean'])} +/- {_fmt(rows.at[m, 'std'])}" for m in metrics]
        lift = rows.at["ndcg@10", "lift"] if "ndcg@10" in rows.index else float("nan")
        lines.append(
            f"| {variant} | {int(rows.users.max())} | "
            + " | ".join(cells)
            + f" | {'n/a' if np.isnan(lift) else f'{100 * lift:+.1f}%'} |"
        )
    return lines


def _plot(summary: pd.DataFrame, path: Path, metric: str = "ndcg@10") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = summary[summary.metric == metric][["model", "slice"]].drop_duplicates().to_numpy().tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (model, slice_name) in zip(axes[0], panels):
        part = summary[(summary.model == model) & (summary.slice == slice_name) & (summary.metric == metric)]
        ax.barh(part.variant, part["mean"], xerr=part["std"], color="#4c72b0")
        ax.invert_yaxis()
        ax.set_title(f"{model}, {slice_name} users")
        ax.set_xlabel(f"{metric} (mean +/- std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _candidate_table(recommendation: dict, metric: str, baseline_name: str) -> list[str]:
    """Each candidate's validation figures: overall and per slice (the lower end of the 95% interval)."""
    slice_names = list(dict.fromkeys(n for c in recommendation["candidates"] for n in c["slices"]))
    lines = [
        f"| variant | validation {metric} | difference over {baseline_name} | 95% interval | users x seeds | "
        + "".join(f"{name}: lower bound (users) | " for name in slice_names)
        + "qualifies | why not |",
        "|---|---|---|---|---|" + "---|" * len(slice_names) + "---|---|",
    ]
    for c in recommendation["candidates"]:
        overall = c["overall"]
        cells = [
            f"{c['slices'][n]['lower_bound']:+.4f} ({c['slices'][n]['users']})" if n in c["slices"] else "n/a"
            for n in slice_names
        ]
        lines.append(
            f"| {c['variant']} | {overall['mean']:.4f} | {overall['difference']:+.4f} | {_interval(overall)} | "
            f"{overall['users']} x {overall['seeds']} | "
            + "".join(f"{cell} | " for cell in cells)
            + f"{'yes' if c['helps'] else 'no'} | {c['blocked_by']} |"
        )
    return lines


def _tower_lines(recommendation: dict) -> list[str]:
    """The two-tower's choice: semantic inputs or ID embeddings only, on validation Recall@50."""
    from profile_features.evaluation.rankers.two_tower import SELECT_METRIC

    lines = ["## Which inputs to give the two-tower", ""]
    if recommendation["helps"]:
        lines.append(f"**Give it `{recommendation['variant']}`.** {recommendation['reason']}.")
    else:
        lines.append(f"**Train the two-tower on ID embeddings only**: {recommendation['reason']}.")
        if recommendation.get("more_data"):
            lines += ["", f"More data: {recommendation['more_data']}."]
    lines += [""] + _candidate_table(recommendation, SELECT_METRIC, "ID only")
    return lines + [""]


def _recommendation_lines(recommendation: dict, checks: list[dict]) -> list[str]:
    lines = ["## Which columns to serve (LightGBM)", ""]
    if recommendation["helps"]:
        lines.append(
            f"**Serve `{recommendation['variant']}`.** Chosen on validation users: {recommendation['reason']}."
        )
    else:
        lines.append(f"**Serve none of the plugin's columns to this ranker**: {recommendation['reason']}.")
        if recommendation.get("more_data"):
            lines += ["", f"More data: {recommendation['more_data']}."]
    lines += [
        "",
        "Validation (every training-window user, out of fold; tuned per set, same budget). A set qualifies when "
        "its gain is beyond the noise for all validation users (95% interval above zero) and, on every slice with "
        "enough users, a loss beyond the harm margin is excluded (the one-sided 95% lower bound shown per slice):",
        "",
    ]
    lines += _candidate_table(recommendation, "NDCG@10", "behaviour only")
    ours = [c for c in checks if c["model"] == "lightgbm"]
    if ours:
        lines += [
            "",
            "Test users, the recommended set against behaviour only:",
            "",
            "| slice | users x seeds | NDCG@10 lift | difference | 95% interval | outcome |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['slice']} | {c['users']} x {c['seeds']} | {_pct(c['lift'], signed=True)} | "
            f"{c['difference']:+.4f} | {_interval(c)} | {c['outcome']} ({c['reason']}) |"
            for c in ours
        ]
    return lines + [""]


def _guard_lines(trainings: list[dict | None]) -> list[str]:
    """Which student each snapshot served, as its deployment guard decided (student/guard.py), and why."""
    rows = []
    for training in trainings:
        guard = (training or {}).get("guard")
        if not guard:
            continue
        windows = guard.get("popularity_half_life_windows")
        weighting = "all-time counts" if windows is None else f"half-life {windows:g} x the validation window"
        popular = guard.get("popularity_ndcg")
        popular = "-" if popular is None else f"{popular:.4f} ({weighting})"
        shipped = guard["variant"] + (
            f" + trending prior x {guard['prior_weight']:g}" if guard.get("prior_weight") else ""
        )
        rows.append(
            f"| {training.get('run_date')} | {shipped} | {guard['validation_users']} "
            f"({guard.get('short_history_users', 0)}) | {popular} | "
            f"{guard['reason']} |"
        )
    if not rows:
        return []
    return [
        "## What the student's deployment guard shipped",
        "",
        "Each snapshot's student is the richest variant that passes against what would ship instead (better than "
        "most-popular and than plain SASRec), on the items after "
        "a validation cutoff inside its training period; most-popular there weighs interactions by age where "
        "that ranks the validation items better (student/popularity.py). The checks are repeated on the validation "
        "users with short histories (in brackets) when they are enough to bound the harm; a trained student carries "
        "the trending prior (w x log(1 + those counts) on its scores) when that ranked its validation items better.",
        "",
        "| snapshot | shipped | validation users (short histories) | most-popular NDCG@10 on validation | why |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def _check_lines(checks: list[dict]) -> list[str]:
    if not checks:
        return []
    counts = check_counts(checks)
    lines = [
        "## Checks (95% intervals, paired over users and seeds)",
        "",
        "Passed: the whole interval is above zero. Failed: below zero. Inconclusive: the interval holds zero "
        "(or too few users), with the smallest lift the comparison could have detected (80% power) and the "
        "users that would show the observed difference. Only passed counts as passed.",
        "",
        f"**{counts['passed']} passed, {counts['failed']} failed, {counts['inconclusive']} inconclusive** "
        f"of {len(checks)}.",
        "",
        "| check | metric | slice | users x seeds | lift | difference | 95% interval | detectable lift "
        "| users to decide | outcome |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        outcome = c["outcome"] if c["outcome"] == "passed" else f"**{c['outcome'].upper()}**"
        lines.append(
            f"| {c['check']} | {c['metric']} | {c['slice']} | {c['users']} x {c['seeds']} | "
            f"{_pct(c['lift'], signed=True)} | {c['difference']:+.4f} | {_interval(c)} | "
            f"{_pct(c['detectable_lift'])} | {_users_to_decide(c)} | {outcome} ({c['reason']}) |"
        )
    return lines + [""]


def _users_to_decide(check: dict) -> str:
    """Users that would show an inconclusive check's difference, if real; nothing for a decided one."""
    if check["outcome"] != "inconclusive" or not check.get("users_needed"):
        return "n/a"
    return f"{check['users_needed']} ({check['users_needed'] / max(check['users'], 1):.1f}x)"


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def _json_ready(value):
    """NaN -> None, numpy scalars -> Python: report.json is plain JSON."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _lift_plot(summary: pd.DataFrame, path: Path, metric: str = "ndcg@10") -> None:
    """Lift over the baseline per variant, one panel per ranker and slice; bars: seed std / baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = summary[(summary.metric == metric) & summary.lift.notna()]
    panels = part[["model", "slice"]].drop_duplicates().to_numpy().tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (model, slice_name) in zip(axes[0], panels):
        rows = part[(part.model == model) & (part.slice == slice_name)]
        base = rows["mean"].to_numpy() / (1 + rows.lift.to_numpy())
        colours = ["#55a868" if lift > 0 else "#c44e52" for lift in rows.lift]
        ax.barh(rows.variant, 100 * rows.lift, xerr=100 * rows["std"] / base, color=colours)
        ax.axvline(0, color="#444", linewidth=0.8)
        ax.invert_yaxis()
        ax.set_title(f"{model}, {slice_name} users")
        ax.set_xlabel(f"{metric} lift over the baseline, % (+/- seed std)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_plot(latency: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['store']}, {r['candidates']}" for r in latency]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.25
    for k, (key, name) in enumerate([("a", "(a) scalar lookup"), ("b", "(b) + on-demand view"), ("c", "(c) + scorer")]):
        xs = [i + (k - 1) * width for i in range(len(latency))]
        ax.bar(xs, [r[f"{key}_p50"] for r in latency], width, label=f"{name} p50")
        ax.scatter(xs, [r[f"{key}_p99"] for r in latency], color="#222", marker="_", s=200)
    ax.set_xticks(range(len(latency)), labels)
    ax.set_ylabel("ms per request (bar p50, dash p99)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out_dir: Path,
    results: pd.DataFrame,
    context: dict,
    per_user: pd.DataFrame | None = None,
    latency: list[dict] | None = None,
    student_benchmark: dict | None = None,
    recommendation: dict | None = None,
    slices: dict[str, int] | None = None,
    details: dict | None = None,
    min_users: int = 30,
    tower_recommendation: dict | None = None,
    provenance: dict | None = None,
) -> Path:
    """Write report.md, report.html (self-contained, with provenance), report.json, the plots, results.csv
    and summary.csv into `out_dir`; returns report.md.

    Args:
        results: long frame of slice means from the rankers and the student evaluation (the tables).
        per_user: model, variant, seed, slice, metric, user_id, value (`slice_rows`): what every check,
            goal and comparison is computed from (paired over users and seeds).
        context: shown at the top (dataset, cutoffs, slice definition, counts), key -> text.
        latency: rows from `profile_features.evaluation.latency.latency_rows`.
        student_benchmark: the JSON of benchmarks/student_quality.py, when given.
        recommendation: `selection.Recommendation.as_dict()` from the validation users.
        slices: slice name -> test users in it.
        details: more machine-readable facts for report.json (tuned settings, training summaries).
        min_users: a slice with fewer users is reported as too small to show a lift.
        tower_recommendation: the same for the two-tower's inputs (`VARIANTS`), on validation Recall@50.
        provenance: what produced the figures (package version, encoder, generator, model, prompt version,
            transform and checkpoint ids, dataset hash), key -> value.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.to_csv(out_dir / "results.csv", index=False)
    summary = summarise(results)
    summary.to_csv(out_dir / "summary.csv", index=False)
    rankers = summary[summary.model != "student"]
    plots = []
    if not rankers.empty:
        _plot(rankers, out_dir / "ndcg.png")
        _lift_plot(rankers, out_dir / "lift.png")
        plots.append(("NDCG@10 lift per column set and slice, with seed error bars", "lift.png"))
    if latency:
        _latency_plot(latency, out_dir / "latency.png")
    tower = tower_recommendation["variant"] if tower_recommendation else None
    if per_user is None:
        per_user = pd.DataFrame(columns=["model", "variant", "seed", "slice", "metric", "user_id", "value"])
    checks = acceptance_checks(per_user, recommendation["variant"] if recommendation else None, min_users, tower)

    lines = ["# profile-features evaluation report", ""]
    lines += [f"- **{key}**: {value}" for key, value in context.items()] + [""]
    if slices:
        lines += ["| slice | test users | |", "|---|---|---|"]
        lines += [
            f"| {name} | {count} | {'too few users to judge: checks on it are inconclusive' * (count < min_users)} |"
            for name, count in slices.items()
        ] + [""]
    if recommendation:
        lines += _recommendation_lines(recommendation, checks)
    if tower_recommendation:
        lines += _tower_lines(tower_recommendation)
    lines += _check_lines(checks)
    goals = goal_checks(per_user, min_users=min_users)
    if goals:
        lines += [
            "## Goals",
            "",
            "| model | variant | slice | NDCG@10 lift | goal | difference | 95% interval | met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['model']} | {c['variant']} | {c['slice']} | {_pct(c['lift'], signed=True)} | "
            f"+{100 * c['goal']:.0f}% | {c['difference']:+.4f} | {_interval(c)} | {'yes' if c['met'] else '**no**'} |"
            for c in goals
        ]
        lines += ["", "Met = the mean lift reaches the goal and the 95% interval of the difference is above zero.", ""]
    lines += _control_lines(per_user, min_users)
    lines += _guard_lines((details or {}).get("student_training") or [])
    for model in dict.fromkeys(summary.model):
        lines += [f"## {model}", ""]
        for slice_name in dict.fromkeys(summary[summary.model == model].slice):
            lines += [f"### {slice_name} users", ""] + _metric_table(summary, model, slice_name) + [""]
    if not rankers.empty:
        lines += ["![NDCG@10 per ranker, slice and variant](ndcg.png)", ""]
    if student_benchmark:
        lines += _student_benchmark_table(student_benchmark)
    if latency:
        lines += [
            "## Online latency (1 user x N candidates, ms)",
            "",
            "(a) scalar item lookup, (b) + on-demand similarity view, (c) + fast path (SemanticScorer)",
            "",
            "| store | candidates | requests | (a) p50 | (a) p99 | (b) p50 | (b) p99 | (c) p50 | (c) p99 "
            "| (b)/(a) | (c)/(a) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['store']} | {r['candidates']} | {r['requests']} | {r['a_p50']:.1f} | {r['a_p99']:.1f} "
            f"| {r['b_p50']:.1f} "
            f"| {r['b_p99']:.1f} | {r['c_p50']:.1f} | {r['c_p99']:.1f} | {r['b/a']:.2f} | {r['c/a']:.2f} |"
            for r in latency
        ]
        lines += ["", "![online latency per store and candidate count](latency.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    (out_dir / "report.html").write_text(render_html(lines, out_dir, provenance or {}, plots))
    document = {
        "context": context,
        "slices": slices or {},
        "min_slice_users": min_users,
        "recommendation": recommendation,
        "two_tower_recommendation": tower_recommendation,
        "checks": checks,
        "check_counts": check_counts(checks),
        "all_checks_passed": bool(checks) and all(c["passed"] for c in checks),
        "goals": goals,
        "comparisons": comparisons(per_user, min_users),
        "control_comparisons": control_comparisons(per_user, min_users),
        "summary": summary.to_dict(orient="records"),
        "latency": latency or [],
        "details": details or {},
        "provenance": provenance or {},
    }
    (out_dir / "report.json").write_text(json.dumps(_json_ready(document), indent=1))
    return path


def _student_benchmark_table(data: dict) -> list[str]:
    lines = [
        f"## Student benchmark (benchmarks/student_quality.py, protocol {data.get('protocol')}, "
        f"seeds {data.get('seeds')}, profiles {data.get('profile_writer')})",
        "",
        "| variant | NDCG@10 | Recall@10 | HR@10 | MRR |",
        "|---|---|---|---|---|",
    ]
    for name, result in data.get("results", {}).items():
        summary = result["summary"]
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{summary[m][0]:.4f} +/- {summary[m][1]:.4f}" for m in ("ndcg@10", "recall@10", "hr@10", "mrr")
            )
            + " |"
        )
    return lines + [""]
