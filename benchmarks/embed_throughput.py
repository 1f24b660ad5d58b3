"""Rows/s of the Spark embedding job against plain `model.encode` on the same rows and cores.

    .venv/bin/python benchmarks/embed_throughput.py [--rows 3000] [--repeats 2]

Baseline: sentence-transformers' own `encode` in this process (torch using every
core). Candidate: `profile_features.spark.stages.run_embeddings` end to end
(read Parquet, encode in Python workers, write Parquet atomically), with the
encoder loaded once per worker. Runs alternate baseline/Spark so machine noise
hits both; the ratio of medians is the figure (goal: >= 0.85).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from profile_features.config import EmbeddingConfig, JobConfig, SampleConfig, SparkConfig
from profile_features.datasets import generate_sample
from profile_features.histories import build_histories
from profile_features.profiles import RuleBasedProfileWriter, generate_profiles


def profile_texts(rows: int) -> pd.DataFrame:
    """`rows` realistic profiles: rule-based profiles of generated users at several cutoffs."""
    sample = generate_sample(SampleConfig(users=max(50, rows // 4), items=400, seed=11))
    events = sample.interactions.merge(sample.items, on="item_id")
    frames = []
    for q in (0.4, 0.6, 0.8, 1.0):
        cutoff = sample.interactions.timestamp.quantile(q) + pd.Timedelta(seconds=1)
        frames.append(generate_profiles(build_histories(events, cutoff, 50), RuleBasedProfileWriter()))
    profiles = pd.concat(frames, ignore_index=True).head(rows)
    profiles["event_timestamp"] = profiles["event_timestamp"].max()
    profiles["user_id"] = [f"u{i}" for i in range(len(profiles))]  # unique keys
    return profiles


def time_raw(texts: list[str], batch_size: int) -> float:
    import torch
    from sentence_transformers import SentenceTransformer

    from profile_features.embeddings import default_model_path

    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(default_model_path(), device="cpu")
    start = time.perf_counter()
    model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return len(texts) / (time.perf_counter() - start)


def time_spark(spark, config: JobConfig, rows: int) -> float:
    from profile_features.spark.stages import run_embeddings

    start = time.perf_counter()
    summary = run_embeddings(spark, config)
    elapsed = time.perf_counter() - start
    assert summary["profiles"] == rows, summary
    return rows / elapsed


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--master", default=f"local[{os.cpu_count()}]")
    args = parser.parse_args(argv)
    from profile_features.spark.session import build_spark

    cores = os.cpu_count()
    profiles = profile_texts(args.rows)
    texts = profiles.profile_text.tolist()
    workdir = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    data = workdir / "data"
    (data / "profiles" / "run_date=2026-01-01").mkdir(parents=True)
    profiles.to_parquet(data / "profiles" / "run_date=2026-01-01" / "part-0.parquet", index=False)
    (data / "validated" / "items").mkdir(parents=True)
    pd.DataFrame(
        {"item_id": ["i0"], "title": ["One item"], "genres": ["Drama"], "year": [2000], "description": [""]}
    ).astype({"year": "int64"}).to_parquet(data / "validated" / "items" / "part-0.parquet", index=False)
    embedding = EmbeddingConfig(batch_size=64)
    config = JobConfig(
        data_dir=str(data),
        embedding=embedding,
        spark=SparkConfig(master=args.master),
        history={"cutoff": "2026-01-01T00:00:00Z"},
    )
    spark = build_spark(config.spark)
    print(
        f"{args.rows} profile texts (mean {statistics.mean(map(len, texts)):.0f} chars), {cores} cores, "
        f"Spark {args.master}"
    )

    raw, job = [], []
    cold = time_spark(spark, config, len(profiles))  # first run loads the encoder in each worker
    print(f"  spark cold (incl. encoder load per worker): {cold:7.1f} rows/s")
    for repeat in range(args.repeats):
        raw.append(time_raw(texts, embedding.batch_size))
        job.append(time_spark(spark, config, len(profiles)))
        print(f"  repeat {repeat}: raw encode {raw[-1]:7.1f} rows/s, spark job {job[-1]:7.1f} rows/s")
    ratio = statistics.median(job) / statistics.median(raw)
    cold_ratio = cold / statistics.median(raw)
    print(f"\nratio spark/raw (warm workers): {ratio:.2f}   (goal >= 0.85)")
    print(f"ratio spark/raw (cold, first run): {cold_ratio:.2f}")
    spark.stop()
    return {"raw": raw, "spark": job, "cold": cold, "ratio": ratio, "cold_ratio": cold_ratio}


if __name__ == "__main__":
    main(sys.argv[1:])
