"""How each pipeline stage's cost grows with the data, and what the driver holds.

    .venv/bin/python benchmarks/scale.py                         # 3 sizes, each 4x the previous
    .venv/bin/python benchmarks/scale.py --users 500 --factor 4 --sizes 3
    .venv/bin/python benchmarks/scale.py --student-set guard.enabled=false --out benchmarks/results/scale-no-guard.json

The rule-based pipeline (validate, histories, profiles, embeddings, semantic columns,
student training, student scoring) runs on generated data at each size, in one process
and one local Spark session. Users and items grow together (items by the same factor), so
a stage whose work is users x catalogue shows it. The student trains a fixed number of
epochs here (no early stopping), so its time per epoch is comparable across sizes.

Per stage and size: seconds, rows/s, and the growth factor against the previous size
(linear growth is the data factor; the figure reported is growth / factor, 1.0 = linear).
Driver memory: the peak resident set of this Python process (the driver; local-mode
executors live in the JVM, reported separately) sampled every 50 ms during each size.
Baseline in the same run: histories against a plain Spark groupBy + collect_list over the
same rows (interactions before the cutoff joined with their item text, every column collected).
The histories stage also writes user_stats and item_stats, which the baseline does not.
Results: printed, and written to benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from profile_features.config import JobConfig, SampleConfig, SparkConfig  # noqa: E402
from profile_features.datasets import generate_sample  # noqa: E402
from profile_features.pipeline import snapshot_cutoffs, write_inputs  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    """Peak RSS of the driver (this process) and of the JVM, sampled in a thread."""

    def __init__(self, jvm_pid: int | None):
        self.jvm_pid, self.driver, self.jvm = jvm_pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.driver = max(self.driver, rss())
            if self.jvm_pid:
                try:
                    self.jvm = max(self.jvm, rss(self.jvm_pid))
                except OSError:
                    pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def jvm_pid(spark) -> int | None:
    try:
        return int(spark.sparkContext._jvm.ProcessHandle.current().pid())
    except Exception:  # noqa: BLE001 - memory of the JVM is extra information only
        return None


def run_size(
    spark, users: int, items: int, root: Path, epochs: int, export_dir: str, student_set: list[str] = ()
) -> dict:
    from pyspark.sql import functions as F

    from profile_features.spark import stages
    from profile_features.spark.io import read_table
    from profile_features.spark.registry import run_stage

    sample = generate_sample(SampleConfig(users=users, items=items, seed=7))
    inputs = write_inputs(sample.interactions, sample.items, root / "raw")
    cutoff = snapshot_cutoffs(sample.interactions.timestamp, [0.9])[0]
    config = JobConfig(
        data_dir=str(root / "data"),
        inputs=inputs,
        history={"cutoff": cutoff},
        embedding={"export_dir": export_dir},  # exported and host-checked once, before the first size
        student={
            "overrides": [f"train.epochs={epochs}", f"train.eval_every={epochs}", "train.patience=null", *student_set]
        },
    )
    rows = {"interactions": len(sample.interactions), "users": users, "items": items}
    timings: dict[str, float] = {}

    def timed(name, fn):
        started = time.perf_counter()
        out = fn()
        timings[name] = time.perf_counter() - started
        return out

    timed("validate", lambda: stages.run_validate(spark, config))
    timed("histories", lambda: run_stage(spark, config, "build_histories"))

    def baseline():  # the plain Spark way to gather each user's events with their item text, written once
        events = read_table(spark, config.table_path("validated/interactions")).where(F.col("timestamp") < cutoff)
        events = events.join(F.broadcast(read_table(spark, config.table_path("validated/items"))), "item_id")
        grouped = events.groupBy("user_id").agg(F.collect_list(F.struct(*events.columns)).alias("events"))
        grouped.write.mode("overwrite").parquet(str(root / "baseline_histories"))

    timed("histories_baseline", baseline)
    timed("profiles", lambda: run_stage(spark, config, "generate_profiles"))
    timed("embeddings", lambda: run_stage(spark, config, "embed_texts"))
    timed("semantic", lambda: run_stage(spark, config, "semantic_columns"))
    train = timed("train_student", lambda: run_stage(spark, config, "train_student"))
    timed("score_student", lambda: run_stage(spark, config, "score_student"))
    stage_rows = {
        "validate": rows["interactions"] + items,
        "histories": rows["interactions"],
        "histories_baseline": rows["interactions"],
        "profiles": users,
        "embeddings": users + items,
        "semantic": users + items,
        "train_student": rows["interactions"],
        "score_student": users,
    }
    return {
        **rows,
        "epochs": train.summary().get("epochs_run", epochs),
        "stages": {
            name: {"seconds": round(s, 2), "rows": stage_rows[name], "rows_per_s": round(stage_rows[name] / s, 1)}
            for name, s in timings.items()
        },
    }


def warm_encoder_export(export_dir: str) -> None:
    """The one-time ONNX export and host check of the default backend, out of every size's timing."""
    from profile_features.config import EmbeddingConfig
    from profile_features.embeddings import default_model_path, encoder_name
    from profile_features.encoder_backends import choose_backend

    choice = choose_backend(EmbeddingConfig(), export_dir, default_model_path(), encoder_name(None))
    print(f"encoder: {choice.name or 'torch'} {choice.fallback_reason or ''}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000, help="users at the smallest size")
    parser.add_argument("--items", type=int, default=500, help="items at the smallest size")
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--sizes", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup-users", type=int, default=200, help="an untimed first run at this size (0: none)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    parser.add_argument(
        "--student-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="student override, e.g. guard.enabled=false",
    )
    args = parser.parse_args(argv)

    from profile_features.spark.session import build_spark

    spark = build_spark(SparkConfig(log_level="WARN"))
    pid = jvm_pid(spark)
    results = []
    with tempfile.TemporaryDirectory(prefix="pf-scale-") as tmp:
        export_dir = str(Path(tmp) / "encoders")
        warm_encoder_export(export_dir)
        if args.warmup_users:  # the JVM's JIT and the Python workers' start, out of the first size's figures
            warmup_items = max(1, args.warmup_users * args.items // args.users)
            run_size(spark, args.warmup_users, warmup_items, Path(tmp) / "warmup", args.epochs, export_dir)
            print(f"warm-up at {args.warmup_users} users done (untimed)", flush=True)
        for n in range(args.sizes):
            users, items = args.users * args.factor**n, args.items * args.factor**n
            with PeakRss(pid) as peak:
                size = run_size(spark, users, items, Path(tmp) / f"size{n}", args.epochs, export_dir, args.student_set)
            size["driver_peak_rss_mb"] = round(peak.driver / 2**20)
            size["jvm_peak_rss_mb"] = round(peak.jvm / 2**20) if pid else None
            results.append(size)
            print(json.dumps(size), flush=True)
    for previous, current in zip(results, results[1:]):
        data_growth = current["interactions"] / previous["interactions"]
        for name, stage in current["stages"].items():
            growth = stage["seconds"] / previous["stages"][name]["seconds"]
            stage["growth_vs_previous"] = round(growth, 2)
            stage["growth_over_linear"] = round(growth / data_growth, 2)
    largest, smallest = results[-1], results[0]
    summary = {
        "command": "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sizes": results,
        "driver_rss_largest_over_smallest": round(largest["driver_peak_rss_mb"] / smallest["driver_peak_rss_mb"], 2),
        "histories_over_baseline_largest": round(
            largest["stages"]["histories"]["seconds"] / largest["stages"]["histories_baseline"]["seconds"], 2
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "sizes"}, indent=1))
    for name in largest["stages"]:
        growth = [s["stages"][name].get("growth_over_linear") for s in results[1:]]
        print(f"{name:20s} " + "  ".join(f"{s['stages'][name]['seconds']:8.1f}s" for s in results) + f"  {growth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
