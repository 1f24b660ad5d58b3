"""Embedding throughput per backend, and the Spark job with the configured default.

    .venv/bin/python benchmarks/embed_throughput.py [--rows 2400] [--repeats 2]

All in one process on the same profile texts (rule-based profiles of generated users):
- baseline: sentence-transformers' own `encode` (torch fp32, every core);
- each backend and precision raw (`ExportedEncoder`: onnxruntime / OpenVINO, fp32 / int8,
  exported once from the packaged model), at several batch sizes;
- the Spark embedding job (`run_embeddings`, read Parquet, encode in Python workers,
  write Parquet) with the default `EmbeddingConfig`, cold (export + first load) and warm.
Runs alternate so machine noise hits all of them; figures are medians. Fidelity per
backend: mean and minimum cosine of its vectors to the torch fp32 vectors, and the top-10
overlap of profile x item similarity rankings (the items a user is closest to).
Goals (issue 18): Spark job with the default >= 2.5x the torch fp32 raw encode, mean cosine
>= 0.99, top-10 overlap >= 0.9. Writes benchmarks/results/embed_throughput.json.
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
import pandas as pd

from profile_features.config import EmbeddingConfig, JobConfig, SampleConfig, SparkConfig
from profile_features.datasets import generate_sample
from profile_features.embeddings import render_item_text
from profile_features.histories import build_histories
from profile_features.profiles import RuleBasedProfileWriter, generate_profiles

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")]
BATCH_SIZES = (16, 32, 64)


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


def item_texts(count: int) -> list[str]:
    items = generate_sample(SampleConfig(users=50, items=count, seed=12)).items
    return [render_item_text(r.title, r.genres, r.year, r.description) for r in items.itertuples(index=False)]


def rate(encode, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = encode(texts)
    return len(texts) / (time.perf_counter() - start), np.asarray(vectors, dtype=np.float32)


def top10_overlap(users: np.ndarray, items: np.ndarray, ref_users: np.ndarray, ref_items: np.ndarray) -> float:
    """Mean share of each user's 10 most similar items that the torch fp32 vectors also rank top 10."""
    top = np.argsort(-(users @ items.T), axis=1)[:, :10]
    ref = np.argsort(-(ref_users @ ref_items.T), axis=1)[:, :10]
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, ref)]))


def time_spark(spark, config: JobConfig, rows: int) -> float:
    from profile_features.spark.registry import run_stage

    start = time.perf_counter()
    summary = run_stage(spark, config, "embed_texts").summary()
    elapsed = time.perf_counter() - start
    assert summary["profiles"] == rows, summary
    print(f"  spark job ({summary['encoder']['name'] or 'torch'}): {rows / elapsed:7.1f} texts/s", flush=True)
    return rows / elapsed


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2400)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--master", default=f"local[{os.cpu_count()}]")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embed_throughput.json")
    args = parser.parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from profile_features.embeddings import default_model_path
    from profile_features.encoder_backends import ExportedEncoder, export_precision
    from profile_features.encoder_export import ensure_export
    from profile_features.spark.session import build_spark

    cores = os.cpu_count() or 1
    profiles = profile_texts(args.rows)
    texts, items = profiles.profile_text.tolist(), item_texts(args.items)
    workdir = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    exports = {
        p: ensure_export(default_model_path(), "all-MiniLM-L6-v2", p, str(workdir / "exports"))
        for p in ("fp32", "int8")
    }
    mean_chars = statistics.mean(map(len, texts))
    print(f"{len(texts)} profile texts (mean {mean_chars:.0f} chars), {len(items)} items, {cores} cores")

    import torch

    torch.set_num_threads(cores)
    torch_model = SentenceTransformer(default_model_path(), device="cpu")
    default = EmbeddingConfig()

    def torch_encode(batch):
        return torch_model.encode(
            batch,
            batch_size=default.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    encoders = {
        f"{b}-{p}-b{bs}": ExportedEncoder(exports[export_precision(p)], b, batch_size=bs, threads=cores, precision=p)
        for b, p in VARIANTS
        for bs in BATCH_SIZES
    }
    rates: dict[str, list[float]] = {"torch-fp32": [], **{name: [] for name in encoders}}
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    torch_encode(texts[:64])
    for encoder in encoders.values():
        encoder.encode(texts[:64])  # warm: first-call allocations out of the timing
    for repeat in range(args.repeats):
        for name, encode in [("torch-fp32", torch_encode)] + [(n, e.encode) for n, e in encoders.items()]:
            speed, users = rate(encode, texts)
            rates[name].append(speed)
            if repeat == 0:
                vectors[name] = (users, np.asarray(encode(items), dtype=np.float32))
            print(f"  repeat {repeat} {name:22s} {speed:7.1f} texts/s", flush=True)
    ref_users, ref_items = vectors["torch-fp32"]
    baseline = statistics.median(rates["torch-fp32"])
    rows = {}
    for name, speeds in rates.items():
        users, item_vectors = vectors[name]
        cosine = (users * ref_users).sum(axis=1) / (np.linalg.norm(users, axis=1) * np.linalg.norm(ref_users, axis=1))
        rows[name] = {
            "texts_per_s": round(statistics.median(speeds), 1),
            "ratio_to_torch_fp32": round(statistics.median(speeds) / baseline, 2),
            "mean_cosine": round(float(cosine.mean()), 6),
            "min_cosine": round(float(cosine.min()), 6),
            "top10_overlap": round(top10_overlap(users, item_vectors, ref_users, ref_items), 4),
        }

    # The Spark job with the default config (the backend a user gets without choosing).
    data = workdir / "data"
    (data / "profiles" / "run_date=2026-01-01").mkdir(parents=True)
    profiles.to_parquet(data / "profiles" / "run_date=2026-01-01" / "part-0.parquet", index=False)
    (data / "validated" / "items").mkdir(parents=True)
    pd.DataFrame(
        {"item_id": ["i0"], "title": ["One item"], "genres": ["Drama"], "year": [2000], "description": [""]}
    ).astype({"year": "int64"}).to_parquet(data / "validated" / "items" / "part-0.parquet", index=False)
    config = JobConfig(
        data_dir=str(data),
        spark=SparkConfig(master=args.master),
        history={"cutoff": "2026-01-01T00:00:00Z"},
    )
    spark = build_spark(config.spark)
    cold = time_spark(spark, config, len(profiles))  # export, host check and first load in each worker
    job, job_torch = [], []
    torch_config = config.model_copy(update={"embedding": EmbeddingConfig(backend="torch")})
    for _ in range(args.repeats):
        job.append(time_spark(spark, config, len(profiles)))
        job_torch.append(time_spark(spark, torch_config, len(profiles)))
    spark.stop()
    result = {
        "command": "python benchmarks/embed_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "texts": len(texts),
        "cores": cores,
        "default": {"backend": default.backend, "precision": default.precision, "batch_size": default.batch_size},
        "backend_sweep_batch_sizes": list(BATCH_SIZES),
        "raw": rows,
        "spark_default_texts_per_s": round(statistics.median(job), 1),
        "spark_default_cold_texts_per_s": round(cold, 1),
        "spark_torch_texts_per_s": round(statistics.median(job_torch), 1),
        "spark_default_over_torch_raw": round(statistics.median(job) / baseline, 2),
        "spark_default_cold_over_torch_raw": round(cold / baseline, 2),
        "spark_torch_over_torch_raw": round(statistics.median(job_torch) / baseline, 2),
    }
    print(f"\n{'variant':22s} {'texts/s':>8s} {'x torch':>8s} {'mean cos':>9s} {'min cos':>8s} {'top10':>6s}")
    for name, row in rows.items():
        print(
            f"{name:22s} {row['texts_per_s']:8.1f} {row['ratio_to_torch_fp32']:8.2f} {row['mean_cosine']:9.6f} "
            f"{row['min_cosine']:8.6f} {row['top10_overlap']:6.3f}"
        )
    print(
        f"\nSpark job, default {default.backend}-{default.precision} b{default.batch_size}: "
        f"{result['spark_default_over_torch_raw']:.2f}x torch fp32 raw warm, "
        f"{result['spark_default_cold_over_torch_raw']:.2f}x cold (goal >= 2.5); "
        f"Spark job with torch: {result['spark_torch_over_torch_raw']:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
