"""The evaluation report: Markdown tables, PNG plots, and the raw results as CSV.

Input is one long frame (model, variant, seed, slice, metric, value, users) from
every ranker, so adding a ranker adds rows, not code. Each model's first variant
is its baseline (the ranker without the plugin's inputs); lifts are relative to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.evaluation.gbdt import ALL_SEMANTIC, ITEM_TEXT_ONLY, STUDENT_OVER_ITEM_TEXT
from profile_features.evaluation.html import render_html

__all__ = [
    "GOALS",
    "summarise",
    "paired_lift",
    "verdict",
    "comparisons",
    "acceptance_checks",
    "goal_checks",
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


def paired_lift(
    results: pd.DataFrame, model: str, variant: str, baseline: str, slice_name: str, metric: str = "ndcg@10"
) -> dict | None:
    """Lift of `variant`'s mean over `baseline`'s, the mean paired (same seed) difference and its
    std, and the larger of the two seed spreads (std); None when either is missing."""
    rows = results[(results.model == model) & (results.slice == slice_name) & (results.metric == metric)]
    with_plugin = rows[rows.variant == variant].set_index("seed").value
    without = rows[rows.variant == baseline].set_index("seed").value
    if with_plugin.empty or without.empty:
        return None
    difference = (with_plugin - without).dropna()
    many = len(difference) > 1
    spread = max(with_plugin.std(ddof=1), without.std(ddof=1)) if many else float("nan")
    users = int(rows[rows.variant.isin([variant, baseline])].users.min())
    return {
        "model": model,
        "variant": variant,
        "baseline": baseline,
        "slice": slice_name,
        "metric": metric,
        "mean": float(with_plugin.mean()),
        "baseline_mean": float(without.mean()),
        "lift": float(with_plugin.mean() / without.mean() - 1) if without.mean() else float("nan"),
        "difference": float(difference.mean()),
        "difference_std": float(difference.std(ddof=1)) if many else float("nan"),
        "spread": float(spread),
        "seeds": int(len(difference)),
        "users": users,
    }


def verdict(check: dict, min_users: int = 30) -> dict:
    """`check` (from paired_lift) with a verdict: "better" / "worse" when the mean paired
    difference is beyond the seed spread, else "no measurable difference"; `too_small` when the
    slice has fewer than `min_users` users, and the smallest lift the spread can show."""
    difference, spread = check["difference"], check["spread"]
    if np.isnan(spread):
        word = "one seed: no spread"
    elif difference > spread:
        word = "better"
    elif difference < -spread:
        word = "worse"
    else:
        word = "no measurable difference"
    detectable = spread / check["baseline_mean"] if check["baseline_mean"] and not np.isnan(spread) else float("nan")
    return check | {
        "verdict": word,
        "too_small": bool(check["users"] < min_users),
        "detectable_lift": float(detectable),
    }


def comparisons(results: pd.DataFrame, min_users: int = 30) -> list[dict]:
    """Every variant against its model's baseline (first variant), per slice and metric, with verdicts."""
    out = []
    for model, rows in results.groupby("model", sort=False):
        baseline = rows.variant.iloc[0]
        for slice_name in dict.fromkeys(rows.slice):
            for metric in dict.fromkeys(rows.metric):
                for variant in dict.fromkeys(rows.variant):
                    if variant != baseline:
                        check = paired_lift(results, model, variant, baseline, slice_name, metric)
                        if check is not None:
                            out.append(verdict(check, min_users))
    return out


def acceptance_checks(
    results: pd.DataFrame, recommended: str | None, min_users: int = 30, tower: str | None = None
) -> list[dict]:
    """What must hold on any data, per slice: the recommended LightGBM column set is not worse than
    behaviour-only beyond the spread (NDCG@10); the recommended two-tower inputs are not worse than
    the ID-only towers (Recall@50, what they are chosen on); the student is not worse than
    most-popular beyond it, nor than plain SASRec (NDCG@10)."""
    from profile_features.evaluation.student_quality import MOST_POPULAR, PLAIN, STUDENT
    from rankers.two_tower import SELECT_METRIC, VARIANTS

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
        for slice_name in dict.fromkeys(results[results.model == model].slice):
            check = paired_lift(results, model, variant, baseline, slice_name, metric)
            if check is not None:
                judged = verdict(check, min_users)
                out.append(judged | {"check": name, "passed": judged["verdict"] != "worse"})
    return out


def goal_checks(results: pd.DataFrame, metric: str = "ndcg@10") -> list[dict]:
    """Each goal: met when the mean lift reaches it AND the mean paired difference over
    seeds exceeds the larger of the two variants' seed spreads (std)."""
    checks = []
    baseline_variant = results.groupby("model", sort=False).variant.first()
    for (model, variant, slice_name), goal in GOALS.items():
        if model not in baseline_variant:
            continue
        check = paired_lift(results, model, variant, baseline_variant[model], slice_name, metric)
        if check is not None:
            checks.append(
                check | {"goal": goal, "met": bool(check["lift"] >= goal and check["difference"] > check["spread"])}
            )
    return checks


def control_comparisons(results: pd.DataFrame) -> list[dict]:
    """`paired_lift` of each set that adds to item content over the item-text-only control, per slice."""
    out = []
    for variant in (ALL_SEMANTIC, STUDENT_OVER_ITEM_TEXT):
        for slice_name in dict.fromkeys(results.slice):
            found = paired_lift(results, "lightgbm", variant, ITEM_TEXT_ONLY, slice_name)
            if found is not None:
                out.append({"variant": variant, **found, "beyond_spread": bool(found["difference"] > found["spread"])})
    return out


def _control_lines(results: pd.DataFrame) -> list[str]:
    """Sets that add to the item-text-only control: what the user side, and the student, add."""
    comparisons = control_comparisons(results)
    if not comparisons:
        return []
    lines = [
        "## What the user side and the student add over item content (LightGBM)",
        "",
        f"Against `{ITEM_TEXT_ONLY}` (the item PCA columns and item cluster, which need no user profile), "
        f"same seeds: `{ALL_SEMANTIC}` (everything), and `{STUDENT_OVER_ITEM_TEXT}` (the control plus the "
        "student's columns and the items' semantic-ID codes).",
        "",
        "| column set | slice | NDCG@10 lift | mean difference | seed spread |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['variant']} | {c['slice']} | {100 * c['lift']:+.1f}% | {c['difference']:+.4f} | {_fmt(c['spread'])} |"
        for c in comparisons
    ]
    return lines + [""]


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


def _guard(candidate: dict) -> str:
    if candidate.get("guard_difference") is None:
        return "too few to judge"
    return f"{candidate['guard_difference']:+.4f} ({_fmt(candidate['guard_standard_error'])})"


def _tower_lines(recommendation: dict) -> list[str]:
    """The two-tower's choice: semantic inputs or ID embeddings only, on validation Recall@50."""
    from rankers.two_tower import SELECT_METRIC

    lines = ["## Which inputs to give the two-tower", ""]
    if recommendation["helps"]:
        lines.append(f"**Give it `{recommendation['variant']}`.** {recommendation['reason']}.")
    else:
        lines.append(f"**Train the two-tower on ID embeddings only**: {recommendation['reason']}.")
    lines += [
        "",
        f"| variant | validation {SELECT_METRIC} | paired difference | combined standard error "
        "| new users: difference (SE) | beats ID only |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['variant']} | {c['mean']:.4f} | {c['difference']:+.4f} | {_fmt(c.get('noise', float('nan')))} | "
        f"{_guard(c)} | {'yes' if c['helps'] else 'no'} |"
        for c in recommendation["candidates"]
    ]
    return lines + [""]


def _recommendation_lines(recommendation: dict, checks: list[dict]) -> list[str]:
    lines = ["## Which columns to serve (LightGBM)", ""]
    if recommendation["helps"]:
        lines.append(
            f"**Serve `{recommendation['variant']}`.** Chosen on validation users: {recommendation['reason']}."
        )
    else:
        lines.append(f"**Serve none of the plugin's columns to this ranker**: {recommendation['reason']}.")
    lines += [
        "",
        "Validation (the choice; tuned per set, same budget):",
        "",
        "| column set | validation NDCG@10 | paired difference | standard error (users) | seed spread "
        "| combined standard error | new users: difference (SE) | beats baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['variant']} | {c['mean']:.4f} | {c['difference']:+.4f} | {_fmt(c['standard_error'])} | "
        f"{_fmt(c['seed_spread'])} | {_fmt(c.get('noise', float('nan')))} | {_guard(c)} | "
        f"{'yes' if c['helps'] else 'no'} |"
        for c in recommendation["candidates"]
    ]
    ours = [c for c in checks if c["model"] == "lightgbm"]
    if ours:
        lines += [
            "",
            "Test users, the recommended set against behaviour only:",
            "",
            "| slice | users | NDCG@10 lift | paired difference | seed spread | verdict |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['slice']} | {c['users']} | {100 * c['lift']:+.1f}% | {c['difference']:+.4f} | "
            f"{_fmt(c['spread'])} | {c['verdict']}{' (too few users to tell)' if c['too_small'] else ''} |"
            for c in ours
        ]
    return lines + [""]


def _check_lines(checks: list[dict]) -> list[str]:
    if not checks:
        return []
    lines = [
        "## Checks (must never be worse beyond the seed spread)",
        "",
        "| check | metric | slice | users | lift | paired difference | seed spread | smallest visible lift | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        small = " (slice too small to show a lift at this spread)" if c["too_small"] else ""
        lines.append(
            f"| {c['check']} | {c['metric']} | {c['slice']} | {c['users']} | {100 * c['lift']:+.1f}% | "
            f"{c['difference']:+.4f} "
            f"| {_fmt(c['spread'])} | {_pct(c['detectable_lift'])} | "
            f"{'yes' if c['passed'] else '**NO**'}{small} |"
        )
    return lines + [""]


def _pct(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:.1f}%"


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
        results: long frame from the rankers and the student evaluation.
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
    checks = acceptance_checks(results, recommendation["variant"] if recommendation else None, min_users, tower)

    lines = ["# profile-features evaluation report", ""]
    lines += [f"- **{key}**: {value}" for key, value in context.items()] + [""]
    if slices:
        lines += ["| slice | test users | |", "|---|---|---|"]
        lines += [
            f"| {name} | {count} | {'too few to show a lift at the seed spread' if count < min_users else ''} |"
            for name, count in slices.items()
        ] + [""]
    if recommendation:
        lines += _recommendation_lines(recommendation, checks)
    if tower_recommendation:
        lines += _tower_lines(tower_recommendation)
    lines += _check_lines(checks)
    goals = goal_checks(results)
    if goals:
        lines += [
            "## Goals",
            "",
            "| model | variant | slice | NDCG@10 lift | goal | mean difference | seed spread | met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['model']} | {c['variant']} | {c['slice']} | {100 * c['lift']:+.1f}% | +{100 * c['goal']:.0f}% "
            f"| {c['difference']:+.4f} | {_fmt(c['spread'])} | {'yes' if c['met'] else '**no**'} |"
            for c in goals
        ]
        lines += [
            "",
            "Met = the mean lift reaches the goal and the mean paired difference over seeds is larger "
            "than the larger seed std of the two variants.",
            "",
        ]
    lines += _control_lines(results)
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
        "all_checks_passed": all(c["passed"] for c in checks),
        "goals": goals,
        "comparisons": comparisons(results, min_users),
        "control_comparisons": control_comparisons(results),
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
