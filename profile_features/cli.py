"""The `profile-features` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from profile_features.config import SampleConfig, SparkConfig
from profile_features.freshness.commands import COMMANDS as FRESHNESS_COMMANDS
from profile_features.freshness.commands import add_commands as add_freshness_commands
from profile_features.freshness.commands import run_command as run_freshness_command

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
    evaluate = commands.add_parser("evaluate", help="rankers with and without the semantic features; writes a report")
    evaluate.add_argument("--dataset", choices=["sample", "ml-100k"], default="sample")
    evaluate.add_argument("--ml100k-path", type=Path, default=None, help="default: ../shared/datasets/ml-100k")
    evaluate.add_argument("--workdir", type=Path, default=None, help="default: work/evaluate-<dataset>")
    evaluate.add_argument("--out", type=Path, default=None, help="report folder (default: <workdir>/report)")
    evaluate.add_argument("--seeds", type=int, default=3)
    evaluate.add_argument("--cold-slice", choices=["auto", "natural", "truncated"], default="auto")
    evaluate.add_argument("--student-epochs", type=int, default=30)
    evaluate.add_argument("--two-tower-epochs", type=int, default=10)
    evaluate.add_argument("--no-two-tower", action="store_true")
    evaluate.add_argument("--latency-requests", type=int, default=30, help="0 skips the latency table")
    evaluate.add_argument("--student-benchmark", type=Path, default=None,
                          help="JSON written by benchmarks/student_quality.py --out, shown in the report")
    add_freshness_commands(commands)
    args = parser.parse_args(argv)
    if args.command in FRESHNESS_COMMANDS:
        return run_freshness_command(args)

    if args.command == "demo":
        from profile_features.demo import run_demo

        run_demo(args.repo, SampleConfig(users=args.users, items=args.items, seed=args.seed), SparkConfig(master=args.master))
    elif args.command == "evaluate":
        from profile_features.evaluation.run import EvaluationConfig, run_evaluation

        workdir = args.workdir or Path("work") / f"evaluate-{args.dataset}"
        fields = {"dataset": args.dataset, "workdir": workdir, "out": args.out or workdir / "report", "seeds": args.seeds,
                  "cold_slice": args.cold_slice, "student_epochs": args.student_epochs,
                  "two_tower": not args.no_two_tower, "two_tower_epochs": args.two_tower_epochs,
                  "latency_requests": args.latency_requests, "student_benchmark": args.student_benchmark}
        if args.ml100k_path:
            fields["ml100k_path"] = args.ml100k_path
        run_evaluation(EvaluationConfig(**fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
