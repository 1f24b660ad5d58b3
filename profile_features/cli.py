"""The `profile-features` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from profile_features.config import SampleConfig, SparkConfig
from profile_features.datasets.variants import DATASETS
from profile_features.freshness.commands import COMMANDS as FRESHNESS_COMMANDS
from profile_features.freshness.commands import add_commands as add_freshness_commands
from profile_features.freshness.commands import run_command as run_freshness_command
from profile_features.logs import add_verbosity_arguments, configure_logging, verbosity_level

__all__ = ["main", "build_parser", "evaluation_config"]


def evaluation_config(args):
    """The EvaluationConfig of `evaluate`'s arguments: the job config's inputs, or a named dataset
    written as a CSV pair under the workdir (the same path either way)."""
    from profile_features.config import load_config
    from profile_features.datasets.variants import load_dataset, write_csv_pair
    from profile_features.evaluation.run import ML100K_DEFAULT, EvaluationConfig

    if args.config is None and args.dataset is None:
        raise SystemExit("evaluate: pass --config job.yaml (your data) or --dataset NAME")
    name = args.dataset or args.config.stem
    workdir = args.workdir or Path("work") / f"evaluate-{name}"
    job = load_config(args.config, args.overrides)
    if args.dataset:
        interactions, items = load_dataset(args.dataset, args.ml100k_path or ML100K_DEFAULT)
        job = job.model_copy(update={"inputs": write_csv_pair(interactions, items, workdir / "inputs")})
    return EvaluationConfig(
        job=job,
        dataset=name,
        workdir=workdir,
        out=args.out,
        seeds=args.seeds,
        quantiles=tuple(args.quantiles),
        valid_fraction=args.valid_fraction,
        cold_slice=args.cold_slice,
        cold_max_history=args.cold_max_history,
        min_slice_users=args.min_slice_users,
        student_seeds=args.student_seeds,
        student_overrides=tuple(args.student_set),
        two_tower=not args.no_two_tower,
        two_tower_epochs=args.two_tower_epochs,
        latency_requests=args.latency_requests,
        student_benchmark=args.student_benchmark,
    )


def _timestamp(text: str):
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time ({err})") from err
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _materialize(args) -> int:
    from profile_features.feast.health import OnlineStoreUnavailable, check_online_store
    from profile_features.feast.materialize import EmptyMaterialization, materialize_repo

    if not (args.repo / "feature_store.yaml").exists() and args.feature_store_yaml is None:
        print(
            f"error: {args.repo} has no feature_store.yaml (pass --repo, the folder you ran `feast apply` in)",
            file=sys.stderr,
        )
        return 2
    try:
        check_online_store(args.repo, args.feature_store_yaml)
        loads = materialize_repo(args.repo, args.end, args.start, args.feature_store_yaml, args.views)
    except (EmptyMaterialization, OnlineStoreUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for load in loads:
        print(load.describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from profile_features import __version__

    parser = argparse.ArgumentParser(prog="profile-features", description=__doc__)
    parser.add_argument("--version", action="version", version=f"profile-features {__version__}")
    add_verbosity_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run every stage on generated sample data, then read from Feast")
    demo.add_argument("--repo", type=Path, default=Path("feature_repo"), help="Feast repo to apply and materialize")
    demo.add_argument("--users", type=int, default=SampleConfig().users)
    demo.add_argument("--items", type=int, default=SampleConfig().items)
    demo.add_argument("--seed", type=int, default=SampleConfig().seed)
    demo.add_argument("--master", default="local[*]", help="Spark master")
    materialize = commands.add_parser(
        "materialize",
        help="load the online store over the window the snapshots cover; exit 1 when a first load finds no rows",
    )
    materialize.add_argument("--repo", type=Path, default=Path("feature_repo"), help="applied Feast repo")
    materialize.add_argument("-f", "--feature-store-yaml", type=Path, default=None, help="feature_store.yaml to use")
    materialize.add_argument("--end", type=_timestamp, default=None, help="end (ISO time, UTC; default: now)")
    materialize.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="start of never-materialized views (default: their source's earliest event_timestamp)",
    )
    materialize.add_argument("--view", dest="views", action="append", default=None, help="only this view (repeatable)")
    evaluate = commands.add_parser(
        "evaluate", help="rankers with and without the semantic features on your data; writes report.md and report.json"
    )
    evaluate.add_argument(
        "--config",
        type=Path,
        default=None,
        help="job YAML whose inputs (and profile, embedding, student settings) to evaluate",
    )
    evaluate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="job config override, e.g. profile.generator=openai",
    )
    evaluate.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="a named dataset instead of the config's inputs (written as a CSV pair first)",
    )
    evaluate.add_argument("--ml100k-path", type=Path, default=None, help="default: ../shared/datasets/ml-100k")
    evaluate.add_argument("--workdir", type=Path, default=None, help="default: work/evaluate-<dataset or config name>")
    evaluate.add_argument("--out", type=Path, default=None, help="report folder (default: <workdir>/report)")
    evaluate.add_argument("--seeds", type=int, default=3)
    evaluate.add_argument(
        "--quantiles",
        type=float,
        nargs=2,
        default=(0.6, 0.8),
        metavar=("TRAIN", "TEST"),
        help="snapshot cutoffs as quantiles of interaction time",
    )
    evaluate.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="share of training-window users held out for validation (the last to arrive, among returning and new)",
    )
    evaluate.add_argument("--cold-slice", choices=["auto", "natural", "truncated"], default="auto")
    evaluate.add_argument("--cold-max-history", type=int, default=5)
    evaluate.add_argument("--min-slice-users", type=int, default=30)
    evaluate.add_argument("--student-seeds", type=int, default=None, help="default: --seeds")
    evaluate.add_argument(
        "--student-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="student config override, e.g. train.epochs=50",
    )
    evaluate.add_argument("--two-tower-epochs", type=int, default=50, help="at most; early-stopped on validation")
    evaluate.add_argument("--no-two-tower", action="store_true")
    evaluate.add_argument("--latency-requests", type=int, default=30, help="0 skips the latency table")
    evaluate.add_argument(
        "--student-benchmark",
        type=Path,
        default=None,
        help="JSON written by benchmarks/student_quality.py --out, shown in the report",
    )
    add_freshness_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbosity_level(args.verbose, args.quiet), args.verbose)
    if args.command in FRESHNESS_COMMANDS:
        return run_freshness_command(args)

    if args.command == "demo":
        from profile_features.demo import run_demo

        try:
            run_demo(
                args.repo,
                SampleConfig(users=args.users, items=args.items, seed=args.seed),
                SparkConfig(master=args.master),
            )
        except FileNotFoundError as err:  # the command line named a folder that cannot be used
            print(f"error: {err}", file=sys.stderr)
            return 2
    elif args.command == "materialize":
        return _materialize(args)
    elif args.command == "evaluate":
        from profile_features.evaluation.run import run_evaluation

        run_evaluation(evaluation_config(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
