"""The library logs through `logging`; the command line's -v/-q choose what is shown."""

from __future__ import annotations

import logging

from profile_features import pipeline
from profile_features.cli import build_parser
from profile_features.logs import configure_logging, verbosity_level
from profile_features.spark.entry import job_parser


def test_verbosity_flags_map_to_levels_on_both_command_lines():
    for parser in (build_parser(), job_parser("x")):
        argv = ["demo"] if parser.prog == "profile-features" else []
        assert verbosity_level(**_flags(parser.parse_args(argv))) == logging.INFO
        assert verbosity_level(**_flags(parser.parse_args(["-q", *argv]))) == logging.WARNING
        assert verbosity_level(**_flags(parser.parse_args(["-v", *argv]))) == logging.DEBUG


def _flags(args) -> dict:
    return {"verbose": args.verbose, "quiet": args.quiet}


def test_stage_progress_is_a_log_record_that_quiet_hides(capsys):
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        configure_logging(logging.INFO)
        configure_logging(logging.INFO)  # a second call replaces our handler, it does not add one
        assert sum(getattr(h, "_profile_features", False) for h in root.handlers) == 1
        pipeline.log("snapshot 2026-01-01: histories")
        shown = capsys.readouterr().err
        assert "INFO profile_features.pipeline" in shown and "snapshot 2026-01-01: histories" in shown
        configure_logging(verbosity_level(quiet=1))
        pipeline.log("hidden progress")
        logging.getLogger("profile_features.spark.stages").warning("a table is mostly rejected")
        shown = capsys.readouterr().err
        assert "hidden progress" not in shown and "WARNING profile_features.spark.stages" in shown
        assert logging.getLogger("py4j").level == logging.WARNING  # chatty libraries stay quiet
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_profile_features", False)]:
            root.removeHandler(handler)
        root.setLevel(saved[0])
