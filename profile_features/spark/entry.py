"""The shared body of every `spark_jobs/*.py` entry file: `run_job(STAGES["<name>"], __doc__, argv)`.

A per-snapshot stage's snapshot is decided once, before the stage runs (`common.resolve_snapshot`):
`history.cutoff` when given (`--set history.cutoff=...`), else now for build_histories, else the
newest partition of the stage's upstream table.

Output contract: logs go to stderr, the stage's summary goes to stdout as one JSON document and
nothing else goes there (also under spark-submit, which merges the driver's stderr into its stdout:
see spark/streams.py); `--summary-json PATH` also writes it to a file. A user error (the
config, a path, a header, a missing extra) ends the run with one `error: ...` line on stderr and
exit code 2 (config) or 1 (inputs and the rest); `-v` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from profile_features import storage
from profile_features.config import ConfigError, JobConfig, load_config
from profile_features.help_format import HelpFormatter
from profile_features.logs import add_verbosity_arguments, configure_logging, stdout_to_stderr, verbosity_level
from profile_features.spark.common import resolve_snapshot
from profile_features.spark.preflight import (
    Needs,
    PreflightError,
    check_before_spark,
    check_submitted_jvm,
    check_with_spark,
)
from profile_features.spark.registry import Stage
from profile_features.spark.session import build_spark
from profile_features.spark.streams import driver_streams, under_spark_submit

__all__ = ["job_parser", "parse_job_args", "run_job", "run_main", "USER_ERRORS", "Needs", "Stage"]

log = logging.getLogger(__name__)

# Errors that are the user's to fix and whose message says how: one line, no traceback.
USER_ERRORS = (ConfigError, PreflightError, FileNotFoundError, ValueError, ImportError, storage.StorageUnreachable)


def job_parser(description: str) -> argparse.ArgumentParser:
    """`--config`, `--set` and `--summary-json`, the arguments every entry file takes; an entry may add its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    parser.add_argument("--config", help="job YAML (profile_features.config.JobConfig); default: the built-in defaults")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable), e.g. --set history.cutoff=2026-05-01T00:00:00Z; under a mapping "
        "the rest of the key is one key: --set spark.conf.spark.sql.shuffle.partitions=64",
    )
    parser.add_argument(
        "--summary-json",
        metavar="PATH",
        default=None,
        help="also write the run summary to this file or URI (default: stdout only)",
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
    stage: Stage | Callable[..., object],
    description: str,
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    needs: Needs | None = None,
) -> dict:
    """Parse `--config/--set` (with an entry's own `parser`, built on `job_parser`), check what can be
    checked in seconds, build the session, resolve the snapshot, run one stage, print its summary.

    `stage` is a registry `Stage` (its own `needs` unless `needs` is given), or a plain
    `(spark, config)` function (a tool that is no stage: refresh_plan) returning a result or a dict.

    Raises what the stage raises (an entry's `__main__` turns user errors into one line: `run_main`).
    The session is stopped at the end only when this call started it.
    """
    from pyspark import SparkContext

    if not isinstance(stage, Stage):
        name = getattr(stage, "__name__", "job")
        stage = Stage(name, name, stage, "", (), (), Needs(), per_snapshot=False)
    needs = stage.needs if needs is None else needs

    args = (parser or job_parser(description)).parse_args(argv)
    configure_logging(verbosity_level(args.verbose, args.quiet), args.verbose)
    config = load_config(args.config, args.overrides)
    check_before_spark(config, needs)
    if under_spark_submit():
        check_submitted_jvm(config, needs)
    owned = SparkContext._active_spark_context is None  # in-process callers (tests) keep their session
    spark = build_spark(config.spark)
    try:
        if args.verbose > 1 and not config.spark.log_level:
            spark.sparkContext.setLogLevel("INFO")  # -vv: Spark's own INFO too
        check_with_spark(spark, config, needs)
        snapshot = resolve_snapshot(spark, config, stage.upstream) if stage.per_snapshot else None
        if snapshot is not None:
            log.info("%s: snapshot %s", stage.name, snapshot.run_date)
        with stdout_to_stderr():  # a library's print() must not land in front of the JSON
            result = stage.run(spark, config, snapshot)
        summary = result if isinstance(result, dict) else result.summary()
    finally:
        if owned:
            spark.stop()
    text = json.dumps(summary, indent=2, default=str)
    if args.summary_json:
        storage.write_text(args.summary_json, text + "\n")
    print(text, flush=True)
    return summary


def run_main(main: Callable[[Sequence[str]], object], argv: Sequence[str] | None = None) -> int:
    """An entry file's `__main__`: run `main(argv)`; a user error is one `error: ...` line on stderr
    (the traceback with -v) and exit code 2 for the config, 1 for anything else the user can fix;
    any other failure prints its traceback (to stderr, also under spark-submit) and exits 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with driver_streams():  # under spark-submit: logs to its stderr, only the JSON to its stdout
        try:
            main(argv)
        except USER_ERRORS as err:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("traceback", exc_info=err)
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"error: {message}", file=sys.stderr, flush=True)
            return 2 if isinstance(err, ConfigError) else 1
        except Exception:  # not the user's: the whole traceback, on stderr while the streams are still apart
            traceback.print_exc()
            sys.stderr.flush()
            return 1
    return 0
