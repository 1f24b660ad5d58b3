"""Logging set-up for the command line and the Spark entry files.

The library only logs (`logging.getLogger(__name__)`); the entry points decide what is shown:
INFO by default (each stage and its counts), `-q` warnings only, `-v` debug. Libraries that
talk a lot at INFO (py4j, urllib3, httpx) are kept at WARNING unless `-v` is given twice.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging", "add_verbosity_arguments", "verbosity_level"]

_NOISY = ("py4j", "urllib3", "httpx", "httpcore", "filelock", "sentence_transformers", "transformers")


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
    root.addHandler(handler)
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else max(level, logging.WARNING))


def add_verbosity_arguments(parser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: libraries too)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
