"""Latency of the first events after the stream starts, with and without warming the task slots first.

    .venv/bin/python benchmarks/stream_first_batch.py [--repeats 3] [--events 500]

One process, `local[2]`, SQLite: the sample pipeline of `stream_latency.py` (300 users, one snapshot), then per
repeat and variant (alternating which goes first) a fresh SparkContext (so its Python workers start cold, as after
a deploy or a crash), the event stream started on an empty folder with its own checkpoint, one CSV file of
`--events` events dropped in, and the time from its landing until its last user's value is readable online.
`cold` is the stream as it was before `MicroBatch.warm_up` (patched out here); `warm` the shipped job. Also per
run: how long the start took (the warm-up is paid there, before any event waits) and the first micro-batch's
phases. Writes benchmarks/results/stream_first_batch.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_latency import ROOT, Producer, prepare  # noqa: E402

from profile_features.config import JobConfig  # noqa: E402


def first_events(spark, config, repo: Path, root: Path, users, items, warm: bool, run: int, events: int) -> dict:
    from feast import FeatureStore

    from profile_features.streaming.job import start_stream
    from profile_features.streaming.micro_batch import MicroBatch

    folder = root / f"events-{run}"
    folder.mkdir()
    stream = {
        "source": {"path": str(folder), "header": ["user_id", "item_id", "timestamp", "rating"]},
        "checkpoint": str(root / f"checkpoint-{run}"),
        "trigger_seconds": 0.5,
        "feature_repo": str(repo),
    }
    config = JobConfig.model_validate({**config.model_dump(), "stream": stream})
    shipped = MicroBatch.warm_up
    if not warm:
        MicroBatch.warm_up = lambda self, spark: pd.DataFrame()  # the stream before the warm-up
    try:
        started = time.perf_counter()
        query, processor = start_stream(spark, config)
        start_s = time.perf_counter() - started
    finally:
        MicroBatch.warm_up = shipped
    try:
        producer = Producer(folder, int(events / 0.5), 0.1, users, items, run * 1000, run)  # one file of `events`
        producer.run()
        (probe, second, landed), store = producer.landed[0], FeatureStore(repo_path=str(repo))
        while True:
            stamp = store.get_online_features(
                features=["user_student:student_history_len"], entity_rows=[{"user_id": probe}]
            ).to_dict(include_event_timestamps=True)["student_history_len__ts"][0]
            if stamp and stamp >= second:
                latency = time.monotonic() - landed
                break
            if time.monotonic() - landed > 120:
                raise RuntimeError("the first file never reached the online store")
            time.sleep(0.02)
        while not processor.batches and time.monotonic() - landed < 120:  # the batch ends after its online write
            time.sleep(0.1)
    finally:
        query.stop()
    first = processor.batches[0]
    return {
        "variant": "warm" if warm else "cold",
        "start_s": round(start_s, 3),
        "latency_s": round(latency, 3),
        "first_batch_s": first.seconds,
        "phases": first.phase_seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream_first_batch.json")
    args = parser.parse_args(argv)

    from profile_features.spark.session import build_spark

    runs = []
    with tempfile.TemporaryDirectory(prefix="stream-first-") as tmp:
        root = Path(tmp)
        spark, config, repo, users, items, _ = prepare(root, "sqlite")
        for repeat in range(args.repeats):
            for warm in (repeat % 2 == 1, repeat % 2 == 0):  # alternate which variant goes first
                spark.stop()
                spark = build_spark(config.spark)  # a new SparkContext: its Python workers start cold
                row = first_events(spark, config, repo, root, users, items, warm, len(runs), args.events)
                print(json.dumps(row), flush=True)
                runs.append(row)
        spark.stop()
    median = {
        v: {k: round(statistics.median(r[k] for r in runs if r["variant"] == v), 3) for k in ("start_s", "latency_s")}
        for v in ("cold", "warm")
    }
    result = {
        "command": "benchmarks/stream_first_batch.py " + " ".join(argv or sys.argv[1:]),
        "master": "local[2]",
        "events": args.events,
        "runs": runs,
        "median": median,
        "ratio_first_latency_warm_over_cold": round(median["warm"]["latency_s"] / median["cold"]["latency_s"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({"median": median, "ratio": result["ratio_first_latency_warm_over_cold"]}), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
