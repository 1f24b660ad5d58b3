"""Online latency of one ranking request: 1 user x N candidates, SQLite and Redis.

    .venv/bin/python benchmarks/online_latency.py [--requests 60] [--candidates 100 1000]

For each online store and candidate count, interleaved per request:
  (a) Feast lookup of the scalar item features only (the baseline a ranker already pays),
  (b) the same plus both columns of the on-demand `user_item_similarity` view
      (profile and student similarity: Feast reads every candidate's vector and
      computes cosines per request),
  (c) the same scalar lookup plus `SemanticScorer` computing the same two columns
      (user vectors read once, item vectors in memory).
Prints median and p99 in ms and the ratios to (a); goal (c)/(a) <= 1.5 at 100.
Needs redis-server on PATH (Debian package) for the Redis rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from profile_features.config import SampleConfig, SparkConfig
from profile_features.datasets import generate_sample
from profile_features.evaluation.latency import latency_rows
from profile_features.pipeline import build_feature_repo, feast_cli


def start_redis(workdir: Path) -> tuple[subprocess.Popen, int]:
    import socket

    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    from feast import FeatureStore

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="online-latency-"))
    sample = generate_sample(SampleConfig(users=300, items=max(args.candidates) + 200, seed=5))
    # The student's quality does not matter for latency: a short run fills user_student.
    repo, _ = build_feature_repo(
        sample.interactions,
        sample.items,
        workdir,
        [1.0],
        SparkConfig(master="local[2]"),
        student_overrides=["train.epochs=3", "body.max_len=50"],
    )
    feast_cli(repo, "materialize-incremental", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1)))
    redis_process, port = start_redis(workdir)
    os.environ["REDIS_CONNECTION_STRING"] = f"127.0.0.1:{port}"
    redis_yaml = repo / "feature_store.redis.yaml"
    feast_cli(repo, "apply", store_yaml=redis_yaml)
    feast_cli(
        repo,
        "materialize-incremental",
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1)),
        store_yaml=redis_yaml,
    )

    users, catalogue = sample.user_tastes.user_id.to_numpy(), sample.items.item_id.to_numpy()
    results = []
    try:
        for name, store in (
            ("sqlite", FeatureStore(repo_path=str(repo))),
            ("redis", FeatureStore(repo_path=str(repo), fs_yaml_file=redis_yaml)),
        ):
            results += latency_rows(store, name, users, catalogue, args.candidates, args.requests)
    finally:
        redis_process.terminate()
    print(
        f"\n{args.requests} requests per row; ms; (a) scalar item lookup, (b) + on-demand similarity "
        "view, (c) + fast path"
    )
    print("| store | candidates | (a) p50 | (a) p99 | (b) p50 | (b) p99 | (c) p50 | (c) p99 | (b)/(a) | (c)/(a) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['store']} | {r['candidates']} | {r['a_p50']:.1f} | {r['a_p99']:.1f} | "
            f"{r['b_p50']:.1f} | {r['b_p99']:.1f} "
            f"| {r['c_p50']:.1f} | {r['c_p99']:.1f} | {r['b/a']:.2f} | {r['c/a']:.2f} |"
        )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
