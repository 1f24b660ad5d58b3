"""Online latency of one ranking request (1 user x N candidates) through Feast.

Three paths, interleaved per request so machine noise hits them alike:
  (a) Feast lookup of the scalar item features only (what a ranker already pays),
  (b) the same plus the on-demand `user_item_similarity` view (Feast reads every
      candidate's vector and computes cosines per request),
  (c) the same scalar lookup plus `SemanticScorer` (user vectors read once, item
      vectors in memory).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

__all__ = ["SIMILARITIES", "SCALAR_ITEM_FEATURES", "measure_requests", "latency_rows"]

SIMILARITIES = ["user_item_similarity:profile_item_similarity", "user_item_similarity:student_item_similarity"]
SCALAR_ITEM_FEATURES = [
    "item_stats:item_interaction_count",
    "item_stats:item_mean_rating",
    "item_semantic:item_cluster",
] + [f"item_semantic:item_pc_{i}" for i in range(16)]


def measure_requests(
    store, scorer, users, catalogue, candidates: int, requests: int, rng: np.random.Generator, warmup: int = 3
) -> dict[str, np.ndarray]:
    """Milliseconds per request for paths a, b and c (warm-up requests dropped)."""
    timings = {"a": [], "b": [], "c": []}
    for _ in range(requests + warmup):
        user = str(rng.choice(users))
        items = [str(i) for i in rng.choice(catalogue, size=candidates, replace=False)]
        rows = [{"user_id": user, "item_id": i} for i in items]
        t0 = time.perf_counter()
        store.get_online_features(features=SCALAR_ITEM_FEATURES, entity_rows=rows).to_dict()
        t1 = time.perf_counter()
        store.get_online_features(features=SCALAR_ITEM_FEATURES + SIMILARITIES, entity_rows=rows).to_dict()
        t2 = time.perf_counter()
        scorer.ranking_features(user, items, SCALAR_ITEM_FEATURES)
        t3 = time.perf_counter()
        for key, value in zip("abc", (t1 - t0, t2 - t1, t3 - t2)):
            timings[key].append(value * 1000)
    return {k: np.array(v[warmup:]) for k, v in timings.items()}


def latency_rows(
    store, store_name: str, users, catalogue, candidate_counts: Sequence[int], requests: int
) -> list[dict]:
    """Median and p99 of each path, and the ratios to (a), per candidate count."""
    from profile_features.serving import SemanticScorer

    scorer = SemanticScorer(
        store,
        [str(i) for i in catalogue],
        user_vectors=["user_profile:profile_embedding", "user_student:student_profile_embedding"],
        similarity_names=["profile_item_similarity", "student_item_similarity"],
    )
    scorer.items()  # load the item matrix once, outside the timed requests
    rows = []
    for n in sorted({min(n, len(catalogue)) for n in candidate_counts}):
        t = measure_requests(store, scorer, users, catalogue, n, requests, np.random.default_rng(n))
        row = {"store": store_name, "candidates": n, "requests": requests}
        for key in "abc":
            row[f"{key}_p50"], row[f"{key}_p99"] = float(np.percentile(t[key], 50)), float(np.percentile(t[key], 99))
        row["b/a"], row["c/a"] = row["b_p50"] / row["a_p50"], row["c_p50"] / row["a_p50"]
        rows.append(row)
    return rows
