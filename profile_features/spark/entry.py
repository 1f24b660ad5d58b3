"""The shared body of every `spark_jobs/*.py` entry file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

from profile_features.config import JobConfig, load_config
from profile_features.logs import add_verbosity_arguments, configure_logging, verbosity_level
from profile_features.spark.session import build_spark

__all__ = ["job_parser", "parse_job_args", "run_job"]


def job_parser(description: str) -> argparse.ArgumentParser:
    """`--config` and `--set`, the arguments every entry file takes; an entry may add its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="job YAML (profile_features.config.JobConfig)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set history.cutoff=2026-05-01T00:00:00Z",
    )
    add_verbosity_arguments(parser)
    return parser


def parse_job_args(
    description: str, argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> JobConfig:
    args = (parser or job_parser(description)).parse_args(argv)
    configure_logging(verbosity_level(args.verbose, args.quiet), args.verbose)
    return load_config(args.config, args.overrides)


def run_job(
    stage: Callable[..., dict],
    description: str,
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> dict:
    """Parse `--config/--set` (with an entry's own `parser`, built on `job_parser`), build the session,
    run one stage, print its summary."""
    config = parse_job_args(description, argv, parser)
    spark = build_spark(config.spark)
    summary = stage(spark, config)
    print(json.dumps(summary, indent=2, default=str))
    return summary
