"""Validation stage throughput against plain Spark on the same files (issue 33).

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python benchmarks/validate_throughput.py [--rows 200000 2000000]
        [--items 5000] [--repeats 2] [--master local[2]] [--iso | --parquet]

For each size, generated CSVs (clean rows: `rows` interactions over `items` catalogue items) are handled, in
one process and one SparkSession, alternately by:
- baseline: plain Spark reading both files, casting the columns, joining the catalogue, dropping duplicates
  and writing Parquet (what validation must do at the least);
- validate: `run_validate`, every rule and reason.
A first untimed round of both warms the JVM and the Python workers. Figures are the median wall seconds;
`ratio` = validate / baseline (goal <= 2), and the growth of each per
4x rows against linear. Writes benchmarks/results/validate_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_inputs(folder: Path, rows: int, items: int, seed: int = 0, iso: bool = False) -> tuple[Path, Path]:
    """Clean CSVs: unique (user, item, timestamp) rows, epoch-second (or ISO-8601 UTC text) timestamps,
    ratings 1..5."""
    rng = np.random.default_rng(seed)
    items_csv, events_csv = folder / "items.csv", folder / "events.csv"
    with items_csv.open("w") as out:
        out.write("item_id,title,genres,year\n")
        for i in range(items):
            out.write(f"i{i},Title {i},Drama|Comedy,{1950 + i % 70}\n")
    users = rng.integers(0, max(1, rows // 40), rows)
    item_ids = rng.integers(0, items, rows)
    stamps = 1_600_000_000 + np.arange(rows) * 7
    if iso:
        stamps = np.datetime_as_string(stamps.astype("datetime64[s]"), unit="s").astype(object) + "Z"
    ratings = rng.integers(1, 6, rows)
    with events_csv.open("w") as out:
        out.write("user_id,item_id,timestamp,rating\n")
        for start in range(0, rows, 100_000):
            stop = min(rows, start + 100_000)
            out.write(
                "".join(
                    f"u{u},i{i},{t},{r}\n"
                    for u, i, t, r in zip(
                        users[start:stop], item_ids[start:stop], stamps[start:stop], ratings[start:stop]
                    )
                )
            )
    return items_csv, events_csv


def as_parquet(events_csv: Path) -> Path:
    """The events as Parquet with a real (UTC, microsecond) timestamp column, as `write_inputs` of the pipeline
    hands them over."""
    import pandas as pd

    events = pd.read_csv(events_csv, dtype={"user_id": str, "item_id": str})
    events["timestamp"] = pd.to_datetime(events.timestamp, unit="s", utc=True).astype("datetime64[us, UTC]")
    path = events_csv.with_suffix(".parquet")
    events.to_parquet(path, index=False)
    return path


def baseline(spark, items_csv: Path, events: Path, out: Path, iso: bool = False) -> None:
    """Read, cast, join, dedup, write: the least a validation pass does."""
    from pyspark.sql import functions as F

    items = spark.read.option("header", True).csv(str(items_csv))
    items = items.select(F.trim("item_id").alias("item_id"), "title", "genres", F.col("year").cast("long"))
    items = items.dropDuplicates(["item_id"])
    path = str(events)
    if events.suffix == ".parquet":
        events, stamp = spark.read.parquet(path), F.col("timestamp")
    else:
        events = spark.read.option("header", True).csv(path)
        stamp = F.to_timestamp("timestamp") if iso else F.timestamp_seconds(F.col("timestamp").cast("long"))
    events = events.select(
        F.trim("user_id").alias("user_id"),
        F.trim("item_id").alias("item_id"),
        stamp.alias("timestamp"),
        F.col("rating").cast("double").alias("rating"),
    )
    events = events.join(items.select("item_id"), "item_id").dropDuplicates(["user_id", "item_id", "timestamp"])
    items.write.mode("overwrite").parquet(str(out / "items"))
    events.write.mode("overwrite").parquet(str(out / "interactions"))


def validate(spark, items_csv: Path, events: Path, out: Path) -> dict:
    from profile_features.config import JobConfig
    from profile_features.spark.stages import run_validate

    config = JobConfig.model_validate(
        {"data_dir": str(out), "inputs": {"interactions": {"path": str(events)}, "items": {"path": str(items_csv)}}}
    )
    return run_validate(spark, config).summary()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--iso", action="store_true", help="ISO-8601 text timestamps instead of epoch seconds")
    parser.add_argument("--parquet", action="store_true", help="events as Parquet with a timestamp column")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "validate_throughput.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from profile_features.config import SparkConfig
    from profile_features.spark.session import build_spark

    spark = build_spark(SparkConfig(master=args.master, app_name="validate-throughput", log_level="WARN"))
    results = {
        "master": args.master,
        "items": args.items,
        "repeats": args.repeats,
        "events": "parquet with a timestamp column" if args.parquet else "csv",
        "timestamps": "iso" if args.iso else "epoch",
        "sizes": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            folder = Path(tmp) / f"rows-{rows}"
            folder.mkdir()
            items_csv, events = write_inputs(folder, rows, args.items, iso=args.iso)
            if args.parquet:
                events = as_parquet(events)
            times: dict[str, list[float]] = {"baseline": [], "validate": []}
            summary = None
            if rows == args.rows[0]:  # warm-up, not timed: JVM JIT and Python workers start once per process
                baseline(spark, items_csv, events, folder / "base-warmup", args.iso)
                validate(spark, items_csv, events, folder / "data-warmup")
            for repeat in range(args.repeats):  # alternate, so machine noise hits both
                for name in ("baseline", "validate"):
                    started = time.perf_counter()
                    if name == "baseline":
                        baseline(spark, items_csv, events, folder / f"base-{repeat}", args.iso)
                    else:
                        summary = validate(spark, items_csv, events, folder / f"data-{repeat}")
                    times[name].append(time.perf_counter() - started)
                    print(f"rows={rows} {name} repeat={repeat}: {times[name][-1]:.1f}s", flush=True)
            medians = {name: statistics.median(values) for name, values in times.items()}
            results["sizes"].append(
                {
                    "rows": rows,
                    "seconds": times,
                    "median_s": medians,
                    "ratio": medians["validate"] / medians["baseline"],
                    "accepted": {name: t["accepted"] for name, t in summary["tables"].items()},
                    "read": {name: t["read"] for name, t in summary["tables"].items()},
                }
            )
    sizes = results["sizes"]
    for small, large in zip(sizes, sizes[1:]):  # growth per step against linear
        scale = large["rows"] / small["rows"]
        large["growth_vs_linear"] = {
            name: (large["median_s"][name] / small["median_s"][name]) / scale for name in ("baseline", "validate")
        }
    spark.stop()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
