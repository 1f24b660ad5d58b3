"""The library logs through `logging`; the command line's -v/-q choose what is shown."""

from __future__ import annotations

import logging

from profile_features import pipeline
from profile_features.cli import build_parser
from profile_features.logs import NOISY_LOGGERS, configure_logging, stdout_to_stderr, verbosity_level
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


def test_libraries_info_stays_out_and_their_warnings_come_through(capsys):
    """ONNX graph fusions log INFO under bare module names (`fusion_attention`), Feast's registry
    cache under `feast.*`: none of it is progress a person asked for; their warnings still are."""
    root = logging.getLogger()
    saved = root.level
    try:
        configure_logging(logging.INFO)
        logging.getLogger("fusion_attention").info("fused 6 attention nodes")
        logging.getLogger("feast.infra.registry.registry").info("registry cache refreshed")
        logging.getLogger("profile_features.spark.stages").info("validated 5669 rows")
        logging.getLogger("fusion_attention").warning("attention fusion skipped")
        shown = capsys.readouterr().err
        assert "fused 6" not in shown and "registry cache" not in shown
        assert "validated 5669 rows" in shown and "attention fusion skipped" in shown
        configure_logging(logging.DEBUG, verbose=2)  # -vv: the libraries too
        logging.getLogger("fusion_attention").info("fused 6 attention nodes")
        assert "fused 6" in capsys.readouterr().err
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_profile_features", False)]:
            root.removeHandler(handler)
        root.setLevel(saved)
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_stray_prints_during_a_stage_go_to_stderr(capfd):
    import os

    with stdout_to_stderr():
        print("a library's print")
        os.write(1, b"a C library's write\n")
    print('{"job": "x"}')
    out, err = capfd.readouterr()
    assert out == '{"job": "x"}\n'
    assert "a library's print" in err and "a C library's write" in err


def test_the_jvm_log_profile_is_a_real_file_also_when_the_package_runs_from_a_zip(tmp_path):
    """spark-submit --py-files profile_features.zip: the JVM reads files, not zip members."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    import profile_features

    root = Path(profile_features.__file__).parent
    archive = tmp_path / "profile_features.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, Path("profile_features") / path.relative_to(root))
    code = "import profile_features.spark.session as s; print(s.__file__); print(s._profile_uri())"
    run = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(archive)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    module, uri = run.stdout.split()
    assert ".zip" in module
    text = Path(uri.removeprefix("file://")).read_text()
    assert text == (root / "spark" / "log4j2.properties").read_text() and "rootLogger.level = warn" in text


def test_a_librarys_deprecation_notice_stays_out_and_ours_comes_through(capsys):
    import warnings

    root = logging.getLogger()
    saved = root.level
    try:
        configure_logging(logging.INFO)
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # Feast sets "once" for DeprecationWarning at import
            warnings.warn_explicit(
                "fetch_arrow_table() is deprecated", DeprecationWarning, "/venv/site-packages/ibis/duckdb.py", 332
            )
            warnings.warn_explicit("use cutoff", FutureWarning, "/work/profile_features/pipeline.py", 10)
            warnings.warn_explicit("disk nearly full", UserWarning, "/venv/site-packages/lib/x.py", 1)
        shown = capsys.readouterr().err
        assert "fetch_arrow_table" not in shown
        assert "use cutoff" in shown and "disk nearly full" in shown
    finally:
        logging.captureWarnings(False)
        for handler in [h for h in root.handlers if getattr(h, "_profile_features", False)]:
            root.removeHandler(handler)
        root.setLevel(saved)
