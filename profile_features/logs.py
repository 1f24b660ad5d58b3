"""Logging set-up for the command line and the Spark entry files.

The library only logs (`logging.getLogger(__name__)`); the entry points decide what is shown:
INFO by default (each stage and its counts), `-q` warnings only, `-v` debug. Libraries that
talk a lot at INFO (py4j, urllib3, httpx, ONNX export, Feast's registry cache) are kept at WARNING
unless `-v` is given twice.

Streams: logs go to stderr, an entry file's result (its JSON summary) to stdout, and nothing else
goes to stdout: `stdout_to_stderr` keeps stray prints of libraries off stdout while a stage runs
(under spark-submit see also profile_features/spark/streams.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

__all__ = [
    "configure_logging",
    "add_verbosity_arguments",
    "verbosity_level",
    "stdout_to_stderr",
    "NOISY_LOGGERS",
    "OWN_LOGGERS",
]

NOISY_LOGGERS = (
    "py4j",
    "urllib3",
    "httpx",
    "httpcore",
    "filelock",
    "sentence_transformers",
    "transformers",
    "optimum",  # ONNX export and graph fusion notes
    "onnxruntime",
    "onnx",
    "openvino",
    "nncf",
    "torch.onnx",
    "feast",  # registry cache refreshes, "Materializing N feature views" banners
    "dask",
    "fsspec",
    "numexpr",
)


# Our packages, and scripts run as __main__: their INFO is the progress a person reads.
OWN_LOGGERS = ("profile_features", "benchmarks", "__main__")


class _OwnInfoOnly(logging.Filter):
    """Below WARNING only our own loggers pass: a library that logs INFO (ONNX graph fusions,
    Feast's registry cache, a module that names its logger without its package) stays out
    whatever logger name it picks."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in OWN_LOGGERS


class _NoLibraryDeprecations(logging.Filter):
    """Python warnings arrive as `py.warnings` records (logging.captureWarnings). A library's
    deprecation notice about another library (ibis on duckdb's API, once per Feast view) is
    nothing a user can act on; one raised at our code's line is ours to fix and stays."""

    _KINDS = ("DeprecationWarning:", "PendingDeprecationWarning:", "FutureWarning:")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "py.warnings":
            return True
        where = record.getMessage().split("\n", 1)[0]
        if not any(kind in where for kind in self._KINDS):
            return True
        return any(f"/{package}/" in where for package in OWN_LOGGERS)


def verbosity_level(verbose: int = 0, quiet: int = 0) -> int:
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


def configure_logging(level: int = logging.INFO, verbose: int = 0) -> None:
    """One stderr handler on the root logger with times and logger names; replaces an earlier one of ours."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_profile_features", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler._profile_features = True  # type: ignore[attr-defined]
    if verbose < 2:  # -vv: the libraries' own INFO and DEBUG too
        handler.addFilter(_OwnInfoOnly())
        handler.addFilter(_NoLibraryDeprecations())
    root.addHandler(handler)
    # Warnings become log records (one format, and the filters above apply); off and on again, so that
    # a second call re-installs the hook if something (a test runner) restored warnings.showwarning.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    root.setLevel(level)
    if not sys.stderr.isatty():  # a log file or a pipe: no carriage-return bars ("Loading weights: 37%|...")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else max(level, logging.WARNING))


def add_verbosity_arguments(parser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: libraries too)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While inside, whatever is written to stdout (fd 1 and sys.stdout) goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)
