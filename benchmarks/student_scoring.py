"""Batch-scoring throughput of the student on CPU vs the per-user cost of the profile path.

    .venv/bin/python benchmarks/student_scoring.py --data ../shared/datasets/ml-100k \
        [--checkpoint ckpt_dir] --users 20000 --threads 2

Histories are ml-100k users' full histories (oldest -> newest, up to max_len used), repeated
to `--users` rows; each row carries a 384-d profile so drift is computed too. Without
`--checkpoint` a student with the default config's shapes (configs/student.yaml) and random
weights is saved and loaded through `load_student` (same cost as a trained one).
The profile path is measured for its embed step (all-MiniLM-L6-v2 on rule-based profile texts,
batched) and its rule-based writing step; LLM generation is not run here: its cost is the
stated assumption `--llm-seconds-per-user` (default 2.5 s: ~100 generated tokens at ~40 tokens/s,
the llama.cpp figure for Gemma 3 270M on 2 cores in the project's conventions notes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from profile_features.student.checkpoint import DataStats, save_checkpoint  # noqa: E402
from profile_features.student.config import load_student_config  # noqa: E402
from profile_features.student.data import ItemIndex, user_sequences  # noqa: E402
from profile_features.student.model import StudentModel  # noqa: E402
from profile_features.student.scoring import load_student, score_users  # noqa: E402


def _quality_module():
    spec = importlib.util.spec_from_file_location("student_quality", ROOT / "benchmarks" / "student_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/ml-100k"))
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--config", default=str(ROOT / "configs/student.yaml"))
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--embed-users", type=int, default=943, help="profiles embedded to time the encoder")
    ap.add_argument("--llm-seconds-per-user", type=float, default=2.5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    bench = _quality_module()
    inter, items = bench.load_ml100k(args.data)
    seqs = user_sequences(inter)
    users = sorted(seqs)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            cfg = load_student_config(args.config)
            index = ItemIndex.from_items(items["item_id"])
            model = StudentModel(len(index), 384, cfg)
            ckpt = str(Path(tmp) / "student")
            save_checkpoint(ckpt, model, index, DataStats(len(users), len(index), len(inter), 384, 0))
        t0 = time.perf_counter()
        student = load_student(ckpt, num_threads=args.threads)
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        rows = [users[i % len(users)] for i in range(args.users)]
        profile = rng.normal(size=(len(users), student.model.profile_dim or 1)).astype(np.float32)
        hist = pd.DataFrame(
            {
                "user_id": [f"{u}-{i}" for i, u in enumerate(rows)],
                "item_ids": [seqs[u] for u in rows],
                "profile_embedding": [profile[i % len(users)] for i in range(args.users)],
            }
        )
        score_users(hist.head(args.batch_size), student, batch_size=args.batch_size)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = score_users(hist, student, batch_size=args.batch_size)
            times.append(time.perf_counter() - t0)
        assert len(out) == args.users
    best = min(times)
    users_per_s = args.users / best
    mean_len = float(np.mean([min(len(seqs[u]), student.config.body.max_len) for u in rows]))

    # Profile path: write (rule-based) + embed (MiniLM), batched as in the pipeline.
    ratings = {(u, i): float(r) for u, i, r in zip(inter["user_id"], inter["item_id"], inter["rating"])}
    sub = {u: seqs[u] for u in users[: args.embed_users]}
    _, describe = bench.profile_writer()
    t0 = time.perf_counter()
    texts = bench.build_profile_texts(sub, ratings, items, describe)
    write_s = (time.perf_counter() - t0) / len(sub)
    from profile_features.embeddings import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder(threads=args.threads)
    encoder.encode(list(texts.values())[:8])
    t0 = time.perf_counter()
    encoder.encode(list(texts.values()))
    embed_s = (time.perf_counter() - t0) / len(sub)
    student_s = 1.0 / users_per_s
    report = {
        "checkpoint": "random weights, default shapes" if args.checkpoint is None else args.checkpoint,
        "threads": args.threads,
        "users": args.users,
        "mean_history_len_used": round(mean_len, 1),
        "load_seconds": round(load_s, 3),
        "score_seconds": [round(t, 3) for t in times],
        "student_users_per_s": round(users_per_s, 1),
        "student_ms_per_user": round(1000 * student_s, 3),
        "rule_based_write_ms_per_user": round(1000 * write_s, 3),
        "embed_ms_per_user": round(1000 * embed_s, 3),
        "llm_seconds_per_user_assumed": args.llm_seconds_per_user,
        "ratio_embed_to_student": round(embed_s / student_s, 1),
        "ratio_rule_write_plus_embed_to_student": round((write_s + embed_s) / student_s, 1),
        "ratio_llm_plus_embed_to_student": round((args.llm_seconds_per_user + embed_s) / student_s, 0),
    }
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
