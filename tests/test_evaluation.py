"""Metrics against hand-computed values, the cold-start slice, and the evaluate report end to end."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from profile_features.evaluation.cold_start import history_counts, natural_cold_users, truncate_histories
from profile_features.evaluation.metrics import auc, hit_rate_at_k, list_metrics, mean_metrics, ndcg_at_k, recall_at_k, reciprocal_rank
from profile_features.evaluation.report import goal_checks, summarise, write_report


def test_metrics_match_hand_computed_values():
    # Ranked by score: items 0 (rel), 1, 2 (rel), 3, 4 (rel).
    labels, scores = np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    dcg = 1 + 1 / math.log2(4) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(labels, scores, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(labels, scores, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert recall_at_k(labels, scores, 2) == pytest.approx(1 / 3)
    assert hit_rate_at_k(np.array([0, 0, 1]), np.array([3, 2, 1]), 2) == 0.0
    assert reciprocal_rank(np.array([0, 0, 1]), np.array([3, 2, 1])) == pytest.approx(1 / 3)
    # 3 positives x 2 negatives: positive 0.9 beats both, 0.7 beats 0.6, 0.5 beats none -> 3 of 6.
    assert auc(labels, scores) == pytest.approx(3 / 6)
    assert auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5  # a tie counts half
    assert np.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))
    assert list_metrics(labels, scores, k=2)["hr@2"] == 1.0


def test_mean_metrics_skips_users_without_positives_and_filters_users():
    frame = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c"], "label": [1, 0, 0, 1, 0, 0],
                          "score": [0.9, 0.1, 0.9, 0.1, 0.5, 0.4]})
    both = mean_metrics(frame, "score")
    assert both["users"] == 2  # c has no positive
    assert both["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert both["auc"] == pytest.approx(0.5)
    only_b = mean_metrics(frame, "score", users=["b"])
    assert only_b["users"] == 1 and only_b["mrr"] == pytest.approx(0.5)


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(
        timestamp=lambda f: pd.to_datetime(f.timestamp, utc=True))


def test_cold_start_slice_and_truncation():
    cutoff = datetime(2024, 1, 10, tzinfo=timezone.utc)
    rows = [("long", f"i{d}", f"2024-01-0{d}") for d in range(1, 9)] + [("long", "late", "2024-01-11")]
    rows += [("short", "s1", "2024-01-05"), ("short", "s2", "2024-01-12"), ("new", "n1", "2024-01-12")]
    events = _events(rows)
    counts = history_counts(events, ["long", "short", "new"], cutoff)
    assert counts.to_dict() == {"long": 8, "new": 0, "short": 1}
    assert natural_cold_users(events, ["long", "short", "new"], cutoff, max_history=5) == ["short"]
    cut = truncate_histories(events, ["long"], cutoff, keep=5)
    kept = cut[cut.user_id == "long"].item_id.tolist()
    assert kept == ["i1", "i2", "i3", "i4", "i5", "late"]  # first five before the cutoff, targets untouched
    assert len(cut) == len(events) - 3 and set(cut[cut.user_id != "long"].item_id) == {"s1", "s2", "n1"}


def _long_results():
    rows = []
    for seed, (base, plugin) in enumerate([(0.20, 0.24), (0.22, 0.25), (0.21, 0.245)]):
        for variant, value in (("none", base), ("+ all semantic columns", plugin)):
            rows.append({"model": "lightgbm", "variant": variant, "seed": seed, "slice": "all", "metric": "ndcg@10",
                         "value": value, "users": 50})
            rows.append({"model": "lightgbm", "variant": variant, "seed": seed, "slice": "cold", "metric": "ndcg@10",
                         "value": value * (1.0 if variant == "none" else 0.9), "users": 20})
    return pd.DataFrame(rows)


def test_report_numbers_and_goal_checks(tmp_path):
    results = _long_results()
    summary = summarise(results)
    row = summary[(summary.variant == "+ all semantic columns") & (summary.slice == "all")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean([0.24, 0.25, 0.245]))
    assert row["std"] == pytest.approx(np.std([0.24, 0.25, 0.245], ddof=1))
    assert row["lift"] == pytest.approx(np.mean([0.24, 0.25, 0.245]) / np.mean([0.20, 0.22, 0.21]) - 1)
    checks = {c["slice"]: c for c in goal_checks(results)}
    assert checks["all"]["met"] and not checks["cold"]["met"]  # cold lift +5% < +10%
    path = write_report(tmp_path, results, {"dataset": "hand-made"})
    text = path.read_text()
    assert f"{row['mean']:.4f} +/- {row['std']:.4f}" in text
    assert f"{100 * row['lift']:+.1f}%" in text
    assert (tmp_path / "ndcg.png").stat().st_size > 1000 and (tmp_path / "results.csv").exists()
    assert pd.read_csv(tmp_path / "results.csv").shape == results.shape
