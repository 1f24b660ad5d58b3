"""The `profile-features forget` subcommand (parser and runner; cli.py wires them in)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from pydantic import ValidationError

from profile_features.config import ConfigError, load_config
from profile_features.erasure.forget import forget_users
from profile_features.erasure.ids import read_user_ids
from profile_features.erasure.outside import check_file

__all__ = ["add_forget_command", "run_forget"]


def add_forget_command(commands) -> None:
    forget = commands.add_parser(
        "forget",
        help="erase users from every table, file and snapshot under data_dir and from the online store",
        description=textwrap.fill(
            "Remove the listed users from every personal table under the config's data_dir (every snapshot; only "
            "partitions holding them are rewritten, each atomically), from run summaries and scratch, and, with "
            "--repo, from the Feast online store (SQLite or Redis). Adds their salted hashes to the tombstone list "
            "that validation honours and writes an audit record (counts, no ids) under data_dir/erasure_audit. "
            "Safe to re-run after a failure. Run it while no job writes data_dir.",
            width=100,
        ),
    )
    forget.add_argument("--config", type=Path, required=True, help="the job YAML whose data_dir to erase from")
    forget.add_argument(
        "--users",
        type=Path,
        required=True,
        help="the ids: a CSV or Parquet file with a user_id column, or a text file of one id a line",
    )
    forget.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. data_dir=/data/pf; repeatable (default: none)",
    )
    forget.add_argument(
        "--repo", type=Path, default=None, help="the applied Feast repo whose online store to erase from"
    )
    forget.add_argument(
        "--evaluation",
        dest="evaluations",
        type=Path,
        action="append",
        default=[],
        metavar="WORKDIR",
        help="an `evaluate --workdir` folder to erase from too (its runs' tables, online stores and cut "
        "inputs); repeatable (default: none)",
    )
    forget.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="a Parquet or CSV file outside data_dir with a user_id column (a refresh plan written by refresh-plan "
        "--out, an export): the users' rows are removed; repeatable. The job's profile.only_users is always included",
    )
    forget.add_argument(
        "-f",
        "--feature-store-yaml",
        type=Path,
        default=None,
        help="another feature_store.yaml, e.g. the Redis one (default: <repo>/feature_store.yaml)",
    )


def run_forget(args: argparse.Namespace) -> int:
    """Exit 0 and print the audit record's counts; 2 for a bad config or id file."""
    try:
        config = load_config(args.config, args.overrides)
        ids = read_user_ids(args.users)
    except (ConfigError, ValidationError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    missing = [str(folder) for folder in args.evaluations if not folder.is_dir()]
    if missing:
        print(f"error: --evaluation {', '.join(missing)}: no such folder", file=sys.stderr)
        return 2
    try:
        for path in args.files:
            check_file(path)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = forget_users(
        config,
        ids,
        repo=args.repo,
        feature_store_yaml=args.feature_store_yaml,
        evaluations=args.evaluations,
        files=args.files,
    )
    record = result.record
    summary = {k: record[k] for k in ("users", "rows_removed", "tombstone_version", "online_store")}
    print(json.dumps({**summary, "audit": result.audit_path}, indent=1))
    return 0
