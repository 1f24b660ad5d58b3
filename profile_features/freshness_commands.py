"""The `drift-report` and `refresh-plan` subcommands of `profile-features` (argument
parsing and printing only; the work is in `report` and `refresh_plan`). Paths stay strings:
`pathlib` would turn `s3a://bucket/x` into `s3a:/bucket/x`."""

from __future__ import annotations

import json
import sys

__all__ = ["COMMANDS", "add_commands", "add_plan_arguments", "run_command"]

COMMANDS = ("drift-report", "refresh-plan")


def add_commands(commands) -> None:
    """Register both subcommands on the `profile-features` subparsers."""
    drift = commands.add_parser("drift-report", help="distribution shift of the semantic columns between two runs")
    drift.add_argument("--data-dir", required=True, help="the jobs' data_dir (path or URI)")
    drift.add_argument("--reference", help="run date to compare against (default: the run before --current)")
    drift.add_argument("--current", help="run date to check (default: the newest)")
    drift.add_argument(
        "--kind",
        choices=("profile", "item"),
        default="profile",
        help="user_semantic (profile, default) or item_semantic (item)",
    )
    drift.add_argument("--out", help="Markdown report (default: printed)")
    drift.add_argument("--json", help="JSON report")
    drift.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="psi, ks, cluster_psi, cluster_tvd, cluster_share, min_mean_cosine, bins, epsilon "
        "(e.g. --threshold psi=0.25)",
    )
    drift.add_argument("--no-mean-cosine", action="store_true", help="skip reading the embedding vectors")
    drift.add_argument(
        "--fail-above",
        type=int,
        default=None,
        metavar="N",
        help="exit 1 when more than N checks are flagged (0: any flag), so a scheduler can gate on drift",
    )

    plan = commands.add_parser("refresh-plan", help="users whose LLM profiles to regenerate first, within a budget")
    plan.add_argument("--data-dir", required=True, help="the jobs' data_dir (path or URI)")
    add_plan_arguments(plan)


def add_plan_arguments(parser) -> None:
    """The refresh plan's own arguments (the CLI and spark_jobs/refresh_plan.py share them)."""
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--budget", type=int, help="number of users to regenerate")
    size.add_argument("--budget-fraction", type=float, help="share of the snapshot's users to regenerate")
    parser.add_argument("--out", required=True, help="the list: .parquet or .csv (for profile.only_users), path or URI")
    parser.add_argument("--run-date", help="histories run to plan for (default: the newest)")
    parser.add_argument("--min-drift", type=float, default=0.0, help="drift-only candidates need at least this drift")


def _settings(pairs: list[str]):
    from profile_features.freshness.drift import DriftSettings
    from profile_features.safe_yaml import load_yaml

    raw = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--threshold {pair!r} is not of the form KEY=VALUE")
        key, value = pair.split("=", 1)
        raw[key.strip()] = load_yaml(value, f"--threshold {key.strip()}")
    return DriftSettings.model_validate(raw)


def _drift_report(args) -> int:
    from profile_features.freshness.report import drift_report, render_markdown, write_report

    report = drift_report(
        args.data_dir,
        args.reference,
        args.current,
        args.kind,
        _settings(args.threshold),
        mean_cosine=not args.no_mean_cosine,
    )
    for path in write_report(report, args.out, args.json):
        print(f"wrote {path}")
    if args.out is None:
        print(render_markdown(report))
    runs = f"{report['reference']['run']} -> {report['current']['run']}"
    if report["flagged"]:
        print(f"FLAGGED ({len(report['flagged'])}, {runs}):")
        for flag in report["flagged"]:
            print(f"  {flag}")
    else:
        print(f"no flags ({runs})")
    if args.fail_above is not None and len(report["flagged"]) > args.fail_above:
        print(f"error: {len(report['flagged'])} flags > --fail-above {args.fail_above}", file=sys.stderr)
        return 1
    return 0  # without --fail-above, flags are findings, not failures


def _refresh_plan(args) -> int:
    from profile_features.freshness.refresh_plan import write_plan
    from profile_features.spark.refresh_plan_job import build_refresh_plan

    selected, summary = build_refresh_plan(
        args.data_dir, args.budget, args.budget_fraction, args.run_date, args.min_drift
    )
    summary["output"] = str(write_plan(selected, args.out))
    print(json.dumps(summary, indent=2))
    return 0


def run_command(args) -> int:
    """Run a parsed freshness subcommand; input errors print one line and return 2."""
    from pydantic import ValidationError

    handler = {"drift-report": _drift_report, "refresh-plan": _refresh_plan}[args.command]
    try:
        return handler(args)
    except (FileNotFoundError, ValueError, ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
