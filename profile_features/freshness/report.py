"""The drift report: two runs of `user_semantic` (or `item_semantic`) read from `data_dir`,
compared batch by batch by `drift.compare_batches` (memory bounded by the sketch capacity,
not by the number of users), written as Markdown and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

from profile_features import storage
from profile_features.catalogue import (
    ITEM_SEMANTIC,
    ITEM_TEXT_EMBEDDINGS,
    USER_PROFILE_EMBEDDINGS,
    USER_SEMANTIC,
    DataDir,
    Table,
)
from profile_features.freshness.drift import DriftSettings, VectorMean, compare_batches, vector_cosine
from profile_features.freshness.runs import iter_run, pick_runs
from profile_features.freshness.sketch import DEFAULT_CAPACITY

__all__ = ["KINDS", "TransformMismatch", "drift_report", "render_markdown", "write_report"]

# kind -> (semantic table, embeddings table, vector column, column prefix)
KINDS = {
    "profile": (USER_SEMANTIC, USER_PROFILE_EMBEDDINGS, "profile_embedding", "profile"),
    "item": (ITEM_SEMANTIC, ITEM_TEXT_EMBEDDINGS, "item_text_embedding", "item"),
}


class TransformMismatch(ValueError):
    """The two runs were written by different PCA + k-means transforms: their columns are different axes."""


def _transform_id(data: DataDir, table: Table, run: str, column: str) -> str | None:
    """The one transform id of a run (None without the column), read batch by batch."""
    found, present = set(), False
    for batch in iter_run(data, table, run, [column]):
        present = present or column in batch
        if column in batch:
            found.update(batch[column].dropna().unique())
    if not present:
        return None
    folder = data.partition(table, run)
    ids = sorted(found)
    if len(ids) > 1:
        raise TransformMismatch(f"{folder}: one run holds rows of {len(ids)} transforms {ids}")
    return ids[0] if ids else None


def drift_report(
    data_dir: str | Path,
    reference: str | None = None,
    current: str | None = None,
    kind: str = "profile",
    settings: DriftSettings | None = None,
    mean_cosine: bool = True,
    capacity: int = DEFAULT_CAPACITY,
) -> dict:
    """Compare two runs of the semantic table of `kind` (default: the two newest runs).

    Args:
        mean_cosine: also read the runs' embedding partitions (when both exist) for the
            cosine of the mean vectors; the only part that reads full vectors.
        capacity: values kept per column (see `freshness.sketch`): memory is bounded by it, not by the
            number of users, and runs up to this size compare exactly.

    Raises:
        RunNotFound: a run (or the table) is missing; names the folder.
        TransformMismatch: the runs come from different transforms; names both folders.
    """
    settings = settings or DriftSettings()
    table, vector_table, vector_column, prefix = KINDS[kind]
    data = DataDir(str(data_dir))
    ref_run, cur_run = pick_runs(data, table, reference, current)
    id_column = f"{prefix}_transform_id"
    ids = {run: _transform_id(data, table, run, id_column) for run in (ref_run, cur_run)}
    if ids[ref_run] is not None and ids[cur_run] is not None and ids[ref_run] != ids[cur_run]:
        raise TransformMismatch(
            f"{data.partition(table, ref_run)} was written by transform {ids[ref_run]} but "
            f"{data.partition(table, cur_run)} by {ids[cur_run]}: their columns are different axes "
            "(semantic.refit or a new encoder); compare runs of one transform"
        )
    comparison = compare_batches(
        lambda: iter_run(data, table, ref_run), lambda: iter_run(data, table, cur_run), prefix, settings, capacity
    )

    cosine = None
    if mean_cosine and {ref_run, cur_run} <= set(data.run_dates(vector_table)):
        means = VectorMean(), VectorMean()
        for mean, run in zip(means, (ref_run, cur_run)):
            for batch in iter_run(data, vector_table, run, [vector_column]):
                mean.update(batch[vector_column])
        cosine = vector_cosine(*means)
        if settings.min_mean_cosine is not None and math.isfinite(cosine) and cosine < settings.min_mean_cosine:
            comparison["flagged"].append(f"mean {vector_column} cosine {cosine:.4f} < {settings.min_mean_cosine}")
    return {
        "kind": kind,
        "table": data.root(table),
        "reference": {"run": ref_run, "path": data.partition(table, ref_run), "transform_id": ids[ref_run]},
        "current": {"run": cur_run, "path": data.partition(table, cur_run), "transform_id": ids[cur_run]},
        "settings": settings.model_dump(),
        **comparison,
        "mean_vector_cosine": cosine,
    }


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def render_markdown(report: dict) -> str:
    """The report as Markdown: flags first, then per-dimension and per-cluster tables."""
    ref, cur, s = report["reference"], report["current"], report["settings"]
    lines = [
        f"# Drift of `{report['table'].rsplit('/', 1)[-1]}`: {ref['run']} -> {cur['run']}",
        "",
        f"- reference: `{ref['path']}` ({report['reference_rows']} rows, "
        f"{report['reference_without_vector']} without a vector)",
        f"- current: `{cur['path']}` ({report['current_rows']} rows, {report['current_without_vector']} "
        "without a vector)",
        f"- transform: `{cur['transform_id']}`",
        f"- thresholds: PSI > {s['psi']}, KS > {s['ks']} per dimension ({s['bins']} reference-quantile bins, "
        f"epsilon {s['epsilon']}); clusters PSI > {s['cluster_psi']}, TVD > {s['cluster_tvd']}, "
        f"share change > {s['cluster_share']}",
        "",
    ]
    flagged = report["flagged"]
    lines += [f"## FLAGGED ({len(flagged)})", ""] + [f"- {f}" for f in flagged] if flagged else ["## No flags", ""]
    lines += [
        "",
        "## Compressed dimensions",
        "",
        "| column | ref mean | cur mean | ref std | cur std | PSI | KS | flag |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in report["dimensions"]:
        lines.append(
            f"| {d['column']} | {_num(d['reference_mean'])} | {_num(d['current_mean'])} | {_num(d['reference_std'])} "
            f"| {_num(d['current_std'])} | {_num(d['psi'], 4)} | {_num(d['ks'], 4)} | {'FLAG' if d['flags'] else ''} |"
        )
    clusters = report["clusters"]
    lines += [
        "",
        "## Clusters",
        "",
        f"PSI {_num(clusters['psi'], 4)}, total variation distance {_num(clusters['tvd'], 4)}",
        "",
        "| cluster | ref count | cur count | ref share | cur share | change | flag |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in clusters["table"]:
        lines.append(
            f"| {row['cluster']} | {row['reference_count']} | {row['current_count']} | {row['reference_share']:.3f} "
            f"| {row['current_share']:.3f} | {row['change']:+.3f} | {'FLAG' if row['flagged'] else ''} |"
        )
    if report["mean_vector_cosine"] is not None:
        lines += ["", f"Cosine of the two runs' mean vectors: {_num(report['mean_vector_cosine'], 4)}"]
    return "\n".join(lines) + "\n"


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def write_report(report: dict, markdown: str | Path | None = None, json_path: str | Path | None = None) -> list[str]:
    """Write the Markdown and/or JSON forms; returns the files written."""
    written = []
    if markdown is not None:
        written.append(storage.write_text(markdown, render_markdown(report)))
    if json_path is not None:
        written.append(storage.write_text(json_path, json.dumps(_jsonable(report), indent=2)))
    return written
