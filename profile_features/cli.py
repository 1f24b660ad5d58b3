"""profile-features: LLM user profiles, embeddings and a distilled student, served as Feast features.

Commands (each has --help):
  demo          run every stage on generated sample data and read the result back from Feast
  materialize   load a Feast repo's online store and check it holds the sources' newest rows
  evaluate      rank with and without the semantic features on your data; writes a report
  drift-report  distribution shift of the semantic columns between two runs
  refresh-plan  the users whose LLM profiles to regenerate first, within a budget
  forget        erase users from every table, snapshot and the online store (erasure requests)

The batch stages themselves run with spark-submit (spark_jobs/*.py --config job.yaml); see README.md.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from profile_features.config import SampleConfig, SparkConfig
from profile_features.datasets.variants import DATASETS
from profile_features.erasure.command import add_forget_command, run_forget
from profile_features.freshness_commands import COMMANDS as FRESHNESS_COMMANDS
from profile_features.freshness_commands import add_commands as add_freshness_commands
from profile_features.freshness_commands import run_command as run_freshness_command
from profile_features.help_format import HelpFormatter
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
        cv_folds=args.cv_folds,
        tuning_settings=args.tuning_settings,
        harm_margin=args.harm_margin,
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
    from profile_features.feast.materialize import MaterializationError, materialize_repo

    if not (args.repo / "feature_store.yaml").exists() and args.feature_store_yaml is None:
        print(
            f"error: {args.repo} has no feature_store.yaml (pass --repo, the folder you ran `feast apply` in)",
            file=sys.stderr,
        )
        return 2
    try:
        check_online_store(args.repo, args.feature_store_yaml)
        loads = materialize_repo(
            args.repo, args.end, args.start, args.feature_store_yaml, args.views, reload=args.reload
        )
    except (MaterializationError, OnlineStoreUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for load in loads:
        print(load.describe())
    return 0


# The demo's sample: with 300 users the student's deployment guard had 150 validation users, too few to show
# the trained student's gain over most-popular, so the demo served the popularity prior; with 1,000 (501
# validation users) it ships a trained student (configured or plain SASRec) at both, in about three minutes on 2 cores.
DEMO_USERS = 1000


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=100)


def _mark_required_groups(parser: argparse.ArgumentParser) -> None:
    """Say in each option's help that one of its required mutually exclusive group must be given."""
    for group in parser._mutually_exclusive_groups:
        if group.required:
            names = [action.option_strings[-1] for action in group._group_actions]
            for action in group._group_actions:
                action.help = f"{action.help} (one of {' or '.join(names)} is required)"


def build_parser() -> argparse.ArgumentParser:
    from profile_features import __version__

    parser = argparse.ArgumentParser(prog="profile-features", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"profile-features {__version__}")
    add_verbosity_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sample = SampleConfig()
    demo = commands.add_parser(
        "demo",
        help="run every stage on generated sample data, then read from Feast",
        description=_paragraph(
            "Generate sample users and items (plus a few broken rows), run every stage at two "
            "snapshots, apply and materialize the Feast repo, and print one user's online features and ranking."
        ),
    )
    demo.add_argument("--repo", type=Path, default=Path("feature_repo"), help="Feast repo to apply and materialize")
    demo.add_argument("--users", type=int, default=DEMO_USERS, help="number of generated users")
    demo.add_argument("--items", type=int, default=sample.items, help="number of generated items")
    demo.add_argument("--seed", type=int, default=sample.seed, help="seed of the generated data")
    demo.add_argument("--master", default="local[*]", help="Spark master URL")
    materialize = commands.add_parser(
        "materialize",
        help="load the online store over the window the snapshots cover and check it; exit 1 when it is not loaded",
        description=_paragraph(
            "Load each applied feature view into the online store: a never-materialized view from its "
            "source's first event_timestamp (not now - ttl), the others from their last materialization end. Then "
            "read a sample of entities back: a view whose online rows are not its source's newest (e.g. the registry "
            "remembers an earlier data set's intervals) fails with exit 1 and names the fix, --reload. Exit 2: "
            "no repo, or a view that cannot be planned."
        ),
    )
    materialize.add_argument(
        "--repo", type=Path, default=Path("feature_repo"), help="the applied Feast repo (the folder of `feast apply`)"
    )
    materialize.add_argument(
        "-f",
        "--feature-store-yaml",
        type=Path,
        default=None,
        help="another feature_store.yaml, e.g. the Redis one (default: <repo>/feature_store.yaml)",
    )
    materialize.add_argument("--end", type=_timestamp, default=None, help="window end, ISO time, UTC (default: now)")
    window = materialize.add_mutually_exclusive_group()
    window.add_argument(
        "--start",
        type=_timestamp,
        default=None,
        help="load every chosen view from this ISO time (UTC), whatever the registry remembers (default: a new "
        "view from its source's first row, the others from their last materialization)",
    )
    window.add_argument(
        "--reload",
        action="store_true",
        help="load every chosen view again from its source's first row, whatever the registry remembers "
        "(after pointing the repo at new data)",
    )
    materialize.add_argument(
        "--view",
        dest="views",
        action="append",
        default=None,
        metavar="NAME",
        help="only this feature view; repeatable (default: every applied view)",
    )
    evaluate = commands.add_parser(
        "evaluate",
        help="rankers with and without the semantic features on your data; writes report.md and report.json",
        description=_paragraph(
            "Run the pipeline at two snapshot cutoffs on your data (or a named dataset), then compare "
            "LightGBM and two-tower rankers with and without the semantic columns over seeds, tuned on validation "
            "users; writes report.md, report.json, plots and CSVs."
        ),
    )
    evaluate.add_argument(
        "--config",
        type=Path,
        default=None,
        help="job YAML whose inputs (and profile, embedding, student settings) to evaluate (default: none; "
        "then --dataset is required)",
    )
    evaluate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="job config override, e.g. profile.generator=openai; repeatable (default: none)",
    )
    evaluate.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="a named dataset instead of the config's inputs, written as a CSV pair first (default: the config's)",
    )
    evaluate.add_argument(
        "--ml100k-path",
        type=Path,
        default=None,
        help="MovieLens 100k folder for --dataset ml-100k* (default: ../shared/datasets/ml-100k)",
    )
    evaluate.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the pipeline tables and the report (default: work/evaluate-<dataset or config name>)",
    )
    evaluate.add_argument("--out", type=Path, default=None, help="report folder (default: <workdir>/report)")
    evaluate.add_argument("--seeds", type=int, default=3, help="training seeds per model and column set")
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
    evaluate.add_argument(
        "--cv-folds", type=int, default=5, help="LightGBM validates every training-window user out of fold, in k folds"
    )
    evaluate.add_argument("--tuning-settings", type=int, default=8, help="LightGBM settings searched per column set")
    evaluate.add_argument(
        "--harm-margin",
        type=float,
        default=0.05,
        help="a column set must exclude, on every slice, a loss beyond margin x the baseline (one-sided 95%%)",
    )
    evaluate.add_argument(
        "--cold-slice",
        choices=["auto", "natural", "truncated"],
        default="auto",
        help="cold-start slice: users with a short history (natural), histories cut short (truncated), or "
        "natural when enough such users exist (auto)",
    )
    evaluate.add_argument(
        "--cold-max-history", type=int, default=5, help="interactions before the cutoff that count as cold"
    )
    evaluate.add_argument(
        "--min-slice-users", type=int, default=30, help="smaller slices are reported as too small to show a lift"
    )
    evaluate.add_argument(
        "--student-seeds", type=int, default=None, help="seeds of the student comparison (default: --seeds)"
    )
    evaluate.add_argument(
        "--student-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="student config override, e.g. train.epochs=50; repeatable (default: none)",
    )
    evaluate.add_argument(
        "--two-tower-epochs", type=int, default=50, help="two-tower epochs at most; early-stopped on validation"
    )
    evaluate.add_argument("--no-two-tower", action="store_true", help="skip the two-tower model (LightGBM only)")
    evaluate.add_argument(
        "--latency-requests", type=int, default=30, help="online requests timed for the latency table; 0 skips it"
    )
    evaluate.add_argument(
        "--student-benchmark",
        type=Path,
        default=None,
        help="JSON written by benchmarks/student_quality.py --out, shown in the report (default: none)",
    )
    add_freshness_commands(commands)
    add_forget_command(commands)
    summaries = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, subparser in commands.choices.items():
        subparser.formatter_class = HelpFormatter  # add_parser does not pass the parent's on
        subparser.description = subparser.description or _paragraph(summaries[name].capitalize() + ".")
        _mark_required_groups(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbosity_level(args.verbose, args.quiet), args.verbose)
    if args.command in FRESHNESS_COMMANDS:
        return run_freshness_command(args)

    if args.command == "demo":
        from profile_features.demo import run_demo
        from profile_features.feast.health import OnlineStoreUnavailable
        from profile_features.feast.materialize import MaterializationError

        try:
            run_demo(
                args.repo,
                SampleConfig(users=args.users, items=args.items, seed=args.seed),
                SparkConfig(master=args.master),
            )
        except FileNotFoundError as err:  # the command line named a folder that cannot be used
            print(f"error: {err}", file=sys.stderr)
            return 2
        except (MaterializationError, OnlineStoreUnavailable) as err:  # e.g. a registry from other data
            print(f"error: {err}", file=sys.stderr)
            return 1
    elif args.command == "materialize":
        return _materialize(args)
    elif args.command == "evaluate":
        return _evaluate(args)
    elif args.command == "forget":
        return run_forget(args)
    return 0


def _evaluate(args) -> int:
    """`evaluate`: a user error (config, missing input or extra, a header without a mapped column) is one line and
    exit 2; `-v` shows the traceback."""
    from pydantic import ValidationError

    from profile_features.config import ConfigError
    from profile_features.evaluation.run import MissingExtras, run_evaluation
    from profile_features.validation import InputSchemaError

    try:
        config = evaluation_config(args)
        run_evaluation(config)
    except (ConfigError, ValidationError, FileNotFoundError, MissingExtras, InputSchemaError) as err:
        if args.verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
