"""The evaluation report: Markdown tables, PNG plots, and the raw results as CSV.

Input is one long frame (model, variant, seed, slice, metric, value, users) from
every ranker, so adding a ranker adds rows, not code. Each model's first variant
is its baseline (the ranker without the plugin's inputs); lifts are relative to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.evaluation.gbdt import ALL_SEMANTIC, ITEM_TEXT_ONLY

__all__ = ["GOALS", "summarise", "paired_lift", "goal_checks", "write_report"]

# (model, variant with the plugin, slice) -> required NDCG@10 lift over the model's baseline.
GOALS = {("lightgbm", ALL_SEMANTIC, "all"): 0.03, ("lightgbm", ALL_SEMANTIC, "cold"): 0.10}


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=1, 0 for one seed) per model, slice, variant and metric; lift of the
    mean over the model's baseline variant in the same slice."""
    grouped = results.groupby(["model", "slice", "variant", "metric"], sort=False)
    table = grouped.value.agg(mean="mean", std=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                              seeds="count").reset_index()
    table["users"] = grouped.users.max().to_numpy()
    baseline_variant = results.groupby("model", sort=False).variant.first()
    base = table[table.variant == table.model.map(baseline_variant)].set_index(["model", "slice", "metric"])["mean"]
    keys = pd.MultiIndex.from_frame(table[["model", "slice", "metric"]])
    table["lift"] = table["mean"].to_numpy() / base.reindex(keys).to_numpy() - 1
    return table


def paired_lift(results: pd.DataFrame, model: str, variant: str, baseline: str, slice_name: str,
                metric: str = "ndcg@10") -> dict | None:
    """Lift of `variant`'s mean over `baseline`'s, the mean paired (same seed) difference,
    and the larger of the two seed spreads (std); None when either is missing."""
    rows = results[(results.model == model) & (results.slice == slice_name) & (results.metric == metric)]
    with_plugin = rows[rows.variant == variant].set_index("seed").value
    without = rows[rows.variant == baseline].set_index("seed").value
    if with_plugin.empty or without.empty:
        return None
    difference = (with_plugin - without).dropna()
    spread = max(with_plugin.std(ddof=1), without.std(ddof=1)) if len(difference) > 1 else float("nan")
    return {"model": model, "variant": variant, "baseline": baseline, "slice": slice_name, "metric": metric,
            "lift": with_plugin.mean() / without.mean() - 1, "difference": difference.mean(), "spread": spread}


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
            checks.append(check | {"goal": goal, "met": bool(check["lift"] >= goal and check["difference"] > check["spread"])})
    return checks


def _control_lines(results: pd.DataFrame) -> list[str]:
    """All semantic columns against the item-text-only control: what the user side adds."""
    comparisons = [paired_lift(results, "lightgbm", ALL_SEMANTIC, ITEM_TEXT_ONLY, s) for s in dict.fromkeys(results.slice)]
    comparisons = [c for c in comparisons if c is not None]
    if not comparisons:
        return []
    lines = ["## What the user side adds over item content (LightGBM)", "",
             f"`{ALL_SEMANTIC}` against `{ITEM_TEXT_ONLY}` (the item PCA columns and item cluster, which need no "
             "user profile), same seeds.", "",
             "| slice | NDCG@10 lift | mean difference | seed spread |", "|---|---|---|---|"]
    lines += [f"| {c['slice']} | {100 * c['lift']:+.1f}% | {c['difference']:+.4f} | {_fmt(c['spread'])} |" for c in comparisons]
    return lines + [""]


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def _metric_table(summary: pd.DataFrame, model: str, slice_name: str) -> list[str]:
    part = summary[(summary.model == model) & (summary.slice == slice_name)]
    metrics = list(dict.fromkeys(part.metric))
    lines = ["| variant | users | " + " | ".join(metrics) + " | NDCG@10 lift |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for variant, rows in part.groupby("variant", sort=False):
        rows = rows.set_index("metric")
        cells = [f"{_fmt(rows.at[m, 'mean'])} +/- {_fmt(rows.at[m, 'std'])}" for m in metrics]
        lift = rows.at["ndcg@10", "lift"] if "ndcg@10" in rows.index else float("nan")
        lines.append(f"| {variant} | {int(rows.users.max())} | " + " | ".join(cells)
                     + f" | {'n/a' if np.isnan(lift) else f'{100 * lift:+.1f}%'} |")
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


def write_report(out_dir: Path, results: pd.DataFrame, context: dict, latency: list[dict] | None = None,
                 student_benchmark: dict | None = None) -> Path:
    """Write report.md, ndcg.png and results.csv into `out_dir`; returns the report path.

    Args:
        results: long frame from the rankers and the student evaluation.
        context: shown at the top (dataset, cutoffs, slice definition, counts), key -> text.
        latency: rows from `profile_features.evaluation.latency.latency_rows`.
        student_benchmark: the JSON of benchmarks/student_quality.py, when given.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.to_csv(out_dir / "results.csv", index=False)
    summary = summarise(results)
    summary.to_csv(out_dir / "summary.csv", index=False)
    rankers = summary[summary.model != "student"]
    if not rankers.empty:
        _plot(rankers, out_dir / "ndcg.png")

    lines = ["# profile-features evaluation report", ""]
    lines += [f"- **{key}**: {value}" for key, value in context.items()] + [""]
    checks = goal_checks(results)
    if checks:
        lines += ["## Goals", "", "| model | variant | slice | NDCG@10 lift | goal | mean difference | seed spread | met |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c['model']} | {c['variant']} | {c['slice']} | {100 * c['lift']:+.1f}% | +{100 * c['goal']:.0f}% "
                  f"| {c['difference']:+.4f} | {_fmt(c['spread'])} | {'yes' if c['met'] else '**no**'} |" for c in checks]
        lines += ["", "Met = the mean lift reaches the goal and the mean paired difference over seeds is larger "
                  "than the larger seed std of the two variants.", ""]
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
        lines += ["## Online latency (1 user x N candidates, ms)", "",
                  "(a) scalar item lookup, (b) + on-demand similarity view, (c) + fast path (SemanticScorer)", "",
                  "| store | candidates | requests | (a) p50 | (a) p99 | (b) p50 | (b) p99 | (c) p50 | (c) p99 | (b)/(a) | (c)/(a) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['store']} | {r['candidates']} | {r['requests']} | {r['a_p50']:.1f} | {r['a_p99']:.1f} | {r['b_p50']:.1f} "
                  f"| {r['b_p99']:.1f} | {r['c_p50']:.1f} | {r['c_p99']:.1f} | {r['b/a']:.2f} | {r['c/a']:.2f} |" for r in latency]
        lines.append("")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _student_benchmark_table(data: dict) -> list[str]:
    lines = [f"## Student benchmark (benchmarks/student_quality.py, protocol {data.get('protocol')}, "
             f"seeds {data.get('seeds')}, profiles {data.get('profile_writer')})", "",
             "| variant | NDCG@10 | Recall@10 | HR@10 | MRR |", "|---|---|---|---|---|"]
    for name, result in data.get("results", {}).items():
        summary = result["summary"]
        lines.append(f"| {name} | " + " | ".join(f"{summary[m][0]:.4f} +/- {summary[m][1]:.4f}"
                                              for m in ("ndcg@10", "recall@10", "hr@10", "mrr")) + " |")
    return lines + [""]
