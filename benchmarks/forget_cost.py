"""What erasure costs against the run that made the data: `forget` of 1 and of 1,000 users vs the full pipeline.

    .venv/bin/python benchmarks/forget_cost.py [--users 4000] [--items 2000] [--epochs 3]

One process, one local Spark session: the rule-based pipeline (validate, then two snapshots: histories,
profiles, embeddings, semantic columns, student training and scoring, the student a fixed number of epochs)
on generated data, then the shipped Feast repo applied and materialized into SQLite. Then `forget_users` of one
user and of 1,000 other users (CSV-free: the Python function), each timed, with the SQLite online store.
The figure is the ratio forget / full pipeline run (same process, same data): erasure rewrites only the
partitions that hold a listed user, so its cost grows with the partitions touched, not with the users listed.
Writes benchmarks/results/forget_cost.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from profile_features.config import JobConfig, SampleConfig, SparkConfig  # noqa: E402
from profile_features.datasets import generate_sample  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forget_cost.json")
    args = parser.parse_args(argv)

    from profile_features.erasure import forget_users
    from profile_features.pipeline import (
        apply_and_materialize,
        private_repo,
        run_pipeline,
        snapshot_cutoffs,
        write_inputs,
    )
    from profile_features.spark.session import build_spark

    with tempfile.TemporaryDirectory(prefix="forget-bench-") as tmp:
        root = Path(tmp)
        sample = generate_sample(SampleConfig(users=args.users, items=args.items, seed=7))
        inputs = write_inputs(sample.interactions, sample.items, root / "raw")
        config = JobConfig(
            data_dir=str(root / "data"),
            inputs=inputs,
            student={"overrides": [f"train.epochs={args.epochs}", "guard.enabled=false"]},
            spark=SparkConfig(master="local[2]", log_level="ERROR"),
        )
        spark = build_spark(config.spark)
        cutoffs = snapshot_cutoffs(sample.interactions.timestamp, [0.7, 1.0])
        started = time.perf_counter()
        run_pipeline(spark, config, cutoffs)
        pipeline_s = time.perf_counter() - started
        repo = private_repo(ROOT / "feature_repo", root / "repo", root / "data")
        started = time.perf_counter()
        apply_and_materialize(repo)
        materialize_s = time.perf_counter() - started
        users = sorted(sample.interactions.user_id.astype(str).unique())
        runs = []
        for listed in ([users[0]], users[1:1001]):
            started = time.perf_counter()
            result = forget_users(config, listed, repo=repo, spark=spark)
            seconds = time.perf_counter() - started
            runs.append(
                {
                    "users": len(listed),
                    "seconds": round(seconds, 1),
                    "ratio_to_pipeline": round(seconds / pipeline_s, 3),
                    "rows_removed": sum(t["rows_removed"] for t in result.tables.values()),
                    "partitions_rewritten": sum(len(t["partitions_rewritten"]) for t in result.tables.values()),
                    "online_rows_deleted": result.online.rows_deleted if result.online else None,
                }
            )
            print(json.dumps(runs[-1]), flush=True)
        spark.stop()
    out = {
        "command": "benchmarks/forget_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "users": args.users,
        "items": args.items,
        "interactions": int(len(sample.interactions)),
        "snapshots": 2,
        "pipeline_seconds": round(pipeline_s, 1),
        "materialize_seconds": round(materialize_s, 1),
        "forget": runs,
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
