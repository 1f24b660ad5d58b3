"""Freshness of the profile features: distribution shift between snapshots
(`drift-report`) and which users' LLM profiles to regenerate first (`refresh-plan`).

pandas + numpy only: the drift report reads the tables the batch jobs wrote batch by batch,
in memory bounded by its sketches (`freshness.sketch`)."""

from profile_features.freshness.drift import (
    DriftSettings,
    compare_batches,
    compare_runs,
    ks_statistic,
    psi,
    total_variation,
)
from profile_features.freshness.refresh_plan import check_refresh_list, plan_refresh
from profile_features.freshness.report import TransformMismatch, drift_report, render_markdown, write_report
from profile_features.freshness.runs import RunNotFound

__all__ = [
    "DriftSettings",
    "RunNotFound",
    "TransformMismatch",
    "check_refresh_list",
    "compare_batches",
    "compare_runs",
    "drift_report",
    "ks_statistic",
    "plan_refresh",
    "psi",
    "render_markdown",
    "total_variation",
    "write_report",
]
