"""The `profile-features` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from profile_features.config import SampleConfig, SparkConfig

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profile-features", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run every stage on generated sample data, then read from Feast")
    demo.add_argument("--repo", type=Path, default=Path("feature_repo"), help="Feast repo to apply and materialize")
    demo.add_argument("--users", type=int, default=SampleConfig().users)
    demo.add_argument("--items", type=int, default=SampleConfig().items)
    demo.add_argument("--seed", type=int, default=SampleConfig().seed)
    demo.add_argument("--master", default="local[*]", help="Spark master")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from profile_features.demo import run_demo

        run_demo(args.repo, SampleConfig(users=args.users, items=args.items, seed=args.seed), SparkConfig(master=args.master))
    return 0


if __name__ == "__main__":
    sys.exit(main())
