"""Event-to-online latency of the streaming student refresh, and its cost per refreshed user against the batch job.

    .venv/bin/python benchmarks/stream_latency.py [--rates 250 500 1000 2000] [--seconds 30] [--store sqlite]

One process, `local[2]`: the sample pipeline (300 users, one snapshot; a 3-epoch student, unguarded so a
SASRec is scored: quality is not measured here) -> the shipped Feast repo applied and materialized (SQLite,
or a redis-server started here) -> the stream (`stream.trigger_seconds` 0.5) over a folder that a producer
thread drops one CSV file into every 0.5 s, at each rate in turn (events of existing and new users, the event
time = now).
Latency of a file: from its landing (an atomic rename into the folder) until its last event's user is
readable by `get_online_features` with that event time (polled every 20 ms). p50 / p99 per rate; a rate is
sustained when the last third's p50 is at most 1.5x the first third's (the backlog is not growing).
Cost: the stream's seconds per refreshed user (micro-batch seconds / users scored) against the batch
`score_student` job on the same snapshot (its seconds / users), in the same process.
Goal (issue 37): p99 <= 5 s at >= 1,000 events/s. Writes benchmarks/results/stream_latency-<store>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from profile_features.config import JobConfig, SampleConfig, SparkConfig  # noqa: E402
from profile_features.datasets import generate_sample  # noqa: E402

TICK = 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(root: Path, store: str):
    """(config, repo, users, items, redis process or None): one snapshot of the sample, applied and materialized."""
    from profile_features.pipeline import apply_and_materialize, private_repo, run_pipeline, write_inputs
    from profile_features.spark.session import build_spark

    sample = generate_sample(SampleConfig(users=300, items=400, seed=5))
    inputs = write_inputs(sample.interactions, sample.items, root / "raw")
    config = JobConfig(
        data_dir=str(root / "data"),
        inputs=inputs,
        student={"overrides": ["train.epochs=3", "train.num_threads=1", "guard.enabled=false"]},  # a real model
        spark=SparkConfig(master="local[2]", log_level="ERROR"),
    )
    spark = build_spark(config.spark)
    end = sample.interactions.timestamp.max().to_pydatetime().replace(tzinfo=timezone.utc)
    run_pipeline(spark, config, [end])
    online_store, redis = None, None
    if store == "redis":
        port = _free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(root)],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        online_store = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
    repo = private_repo(ROOT / "feature_repo", root / "repo", root / "data", online_store)
    apply_and_materialize(repo)
    users = sorted(sample.interactions.user_id.astype(str).unique())
    items = sorted(sample.items.item_id.astype(str).unique())
    return spark, config, repo, users, items, redis


class Producer(threading.Thread):
    """Drops a CSV file of `rate * TICK` events into `folder` every TICK seconds; records each file's landing."""

    def __init__(self, folder: Path, rate: int, seconds: float, users, items, start_index: int, seed: int):
        super().__init__(daemon=True)
        self.folder, self.rate, self.seconds, self.users, self.items = folder, rate, seconds, users, items
        self.index, self.random = start_index, random.Random(seed)
        self.landed: list[tuple[str, int, float]] = []  # (probe user, event second, landing time)

    def run(self) -> None:
        per_file = max(1, int(self.rate * TICK))
        deadline = time.monotonic() + self.seconds
        next_tick = time.monotonic()
        while next_tick < deadline:
            now = datetime.now(timezone.utc)
            rows = []
            for k in range(per_file):
                user = self.random.choice(self.users) if self.random.random() > 0.05 else f"new-{self.index}-{k}"
                rows.append(f"{user},{self.random.choice(self.items)},{int(now.timestamp() * 1000)},4\n")
            staged = self.folder.parent / f".staged-{self.index}.csv"
            staged.write_text("user_id,item_id,timestamp,rating\n" + "".join(rows))
            probe = rows[-1].split(",")[0]
            staged.rename(self.folder / f"events-{self.index:06d}.csv")
            self.landed.append((probe, int(now.timestamp()), time.monotonic()))
            self.index += 1
            next_tick += TICK
            time.sleep(max(0.0, next_tick - time.monotonic()))


def measure(repo: Path, producer: Producer, drain_s: float = 60.0) -> list[float]:
    """Latency of each landed file: poll its probe user's online event time until it reaches the file's."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    latencies: dict[int, float] = {}
    deadline = None
    while True:
        pending = [i for i in range(len(producer.landed)) if i not in latencies]
        if not producer.is_alive():
            deadline = deadline or time.monotonic() + drain_s
            if not pending or time.monotonic() > deadline:
                break
        if pending:
            probes = [producer.landed[i] for i in pending]
            online = store.get_online_features(
                features=["user_student:student_history_len"], entity_rows=[{"user_id": p[0]} for p in probes]
            ).to_dict(include_event_timestamps=True)
            stamps = online["student_history_len__ts"]
            seen = time.monotonic()
            for i, (user, second, landed), stamp in zip(pending, probes, stamps):
                if stamp and stamp >= second:
                    latencies[i] = seen - landed
        time.sleep(0.02)
    missing = len(producer.landed) - len(latencies)
    return [latencies[i] for i in sorted(latencies)] + [float("inf")] * missing


def summarise(rate: int, latencies: list[float], batches) -> dict:
    finite = sorted(x for x in latencies if x != float("inf"))
    third = max(1, len(latencies) // 3)
    first, last = latencies[:third], latencies[-third:]
    quantile = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None  # noqa: E731
    growing = statistics.median(last) > 1.5 * statistics.median(first)
    return {
        "rate_events_per_s": rate,
        "files": len(latencies),
        "never_seen": len(latencies) - len(finite),
        "p50_s": round(quantile(finite, 0.5), 3) if finite else None,
        "p99_s": round(quantile(finite, 0.99), 3) if finite else None,
        # without the first third's files, which wait for the first micro-batch (Feast's store and the checkpoint
        # opened in each Python worker): the latency of a stream that has been running a while
        "p99_last_two_thirds_s": round(quantile(sorted(x for x in latencies[third:] if x != float("inf")), 0.99), 3)
        if finite
        else None,
        "first_third_p50_s": round(statistics.median(first), 3),
        "last_third_p50_s": round(statistics.median(last), 3) if last[-1] != float("inf") else None,
        "sustained": not growing and len(finite) == len(latencies),
        "micro_batches": len(batches),
        "mean_batch_s": round(statistics.mean(b.seconds for b in batches), 3) if batches else None,
        "mean_events_per_batch": round(statistics.mean(b.read for b in batches), 1) if batches else None,
        "batches": [{"events": b.read, "seconds": b.seconds, "phases": b.phase_seconds} for b in batches],
        "mean_phase_s": {
            name: round(statistics.mean(b.phase_seconds.get(name, 0.0) for b in batches), 3)
            for name in (batches[0].phase_seconds if batches else {})
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or ROOT / "benchmarks" / "results" / f"stream_latency-{args.store}.json"

    from profile_features.spark.registry import STAGES
    from profile_features.streaming.job import start_stream

    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        root = Path(tmp)
        spark, config, repo, users, items, redis = prepare(root, args.store)
        try:
            from profile_features.catalogue import HISTORIES, DataDir

            snapshot = DataDir(config.data_dir).snapshot(DataDir(config.data_dir).run_dates(HISTORIES)[-1])
            started = time.perf_counter()
            batch_result = STAGES["score_student"].run(spark, config, snapshot)
            batch_seconds = time.perf_counter() - started
            events = root / "events"
            events.mkdir()
            stream = {
                "source": {
                    "path": str(events),
                    "header": ["user_id", "item_id", "timestamp", "rating"],
                    "options": {"maxFilesPerTrigger": "1000"},
                },
                "trigger_seconds": TICK,
                "feature_repo": str(repo),
            }
            config = JobConfig.model_validate({**config.model_dump(), "stream": stream})
            query, processor = start_stream(spark, config)
            rows, index = [], 0
            try:
                for seed, rate in enumerate(args.rates):
                    done = len(processor.batches)
                    producer = Producer(events, rate, args.seconds, users, items, index, seed)
                    producer.start()
                    latencies = measure(repo, producer)
                    index = producer.index
                    row = summarise(rate, latencies, processor.batches[done:])
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                query.stop()
            streamed = [b for b in processor.batches if b.users_scored]
            stream_per_user = sum(b.seconds for b in streamed) / max(1, sum(b.users_scored for b in streamed))
            batch_per_user = batch_seconds / max(1, batch_result.users)
        finally:
            if redis is not None:
                redis.terminate()
    sustained = [r["rate_events_per_s"] for r in rows if r["sustained"]]
    result = {
        "command": "benchmarks/stream_latency.py " + " ".join(argv or sys.argv[1:]),
        "store": args.store,
        "master": "local[2]",
        "tick_s": TICK,
        "rates": rows,
        "highest_sustained_rate": max(sustained) if sustained else None,
        "goal": "p99 <= 5 s at >= 1000 events/s",
        "cost": {
            "stream_s_per_refreshed_user": round(stream_per_user, 5),
            "batch_score_student_s_per_user": round(batch_per_user, 5),
            "batch_users": batch_result.users,
            "batch_seconds": round(batch_seconds, 2),
            "ratio_stream_over_batch": round(stream_per_user / batch_per_user, 2),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["cost"]), f"highest sustained: {result['highest_sustained_rate']}", out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
