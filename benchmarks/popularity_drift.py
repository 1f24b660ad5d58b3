"""How much the most-popular baseline loses to drift: all-time counts against recency-weighted ones.

    .venv/bin/python benchmarks/popularity_drift.py [--shared ../shared/datasets] \
        [--out benchmarks/results/popularity_drift.json]

The protocol of evaluate's student comparison and the deployment guard: a test cutoff at the 0.8
quantile of timestamps (floored to the day); a validation cutoff leaving the newest 15% of the
interactions before it after it. Each user with a history and items after a cutoff is scored on their
first 5 items after it, ranked over every item by counts before the cutoff, each interaction weighted
0.5 ** (age / half-life) for the half-lives the guard tries (student/popularity.py: all-time, then
0.25, 1 and 4 x the validation window's length); NDCG@10 per user, averaged over the targets, then
over users. "validated" is the half-life that ranks the validation targets best, as the guard picks
it, and its figure on test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from profile_features.datasets.movielens import load_ml100k  # noqa: E402
from profile_features.student.popularity import HALF_LIFE_FACTORS  # noqa: E402

DATASETS = ("ml-100k", "amazon-digital-music", "amazon-office", "lastfm-tags")
TARGETS = 5


def load(name: str, shared: Path) -> pd.DataFrame:
    if name == "ml-100k":
        interactions, _ = load_ml100k(shared / name)
    else:
        interactions = pd.read_csv(shared / name / "interactions.csv", dtype={"user_id": str, "item_id": str})
        interactions["timestamp"] = pd.to_datetime(interactions.timestamp, unit="s", utc=True)
    return interactions.astype({"user_id": str, "item_id": str})[["user_id", "item_id", "timestamp"]]


def popularity_ndcg(before: pd.DataFrame, after: pd.DataFrame, now, half_life: float | None, items) -> float:
    age = (now - before.timestamp).dt.total_seconds().to_numpy()
    weights = np.ones(len(before)) if half_life is None else np.exp2(-age / half_life)
    counts = pd.Series(weights, index=before.item_id.to_numpy()).groupby(level=0).sum().reindex(items, fill_value=0.0)
    ordered = np.sort(counts.to_numpy())
    targets = after.sort_values("timestamp", kind="stable")
    targets = targets[targets.user_id.isin(set(before.user_id))].groupby("user_id").head(TARGETS)
    score = counts.reindex(targets.item_id).to_numpy()
    above = np.searchsorted(ordered, score, side="right")
    ranks = len(ordered) - above + (above - np.searchsorted(ordered, score, side="left") - 1) / 2
    gains = np.where(ranks < 10, 1 / np.log2(ranks + 2), 0.0)
    return float(pd.Series(gains, index=targets.user_id.to_numpy()).groupby(level=0).mean().mean())


def measure(interactions: pd.DataFrame) -> dict:
    items = pd.Index(interactions.item_id.unique())
    test_cutoff = interactions.timestamp.quantile(0.8).floor("D")
    before, after = (
        interactions[interactions.timestamp < test_cutoff],
        interactions[interactions.timestamp >= test_cutoff],
    )
    valid_cutoff = before.timestamp.quantile(0.85)
    window = (before.timestamp.max() - valid_cutoff).total_seconds()
    windows = {
        "validation": (before[before.timestamp < valid_cutoff], before[before.timestamp >= valid_cutoff], valid_cutoff)
    }
    windows["test"] = (before, after, test_cutoff)
    figures = {}
    for name, (early, late, now) in windows.items():
        figures[name] = {
            "all-time" if f is None else f"{f:g} x window": round(
                popularity_ndcg(early, late, now, None if f is None else f * window, items), 4
            )
            for f in HALF_LIFE_FACTORS
        }
    chosen = max(figures["validation"], key=lambda k: (figures["validation"][k], k == "all-time"))
    return {
        "interactions": len(interactions),
        "validation_window_days": round(window / 86400, 1),
        "ndcg@10": figures,
        "validated": chosen,
        "validated_on_test": figures["test"][chosen],
        "test_lift_over_all_time": round(figures["test"][chosen] / max(figures["test"]["all-time"], 1e-9) - 1, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "popularity_drift.json")
    args = parser.parse_args(argv)
    results = {name: measure(load(name, args.shared)) for name in args.datasets}
    print(json.dumps(results, indent=1))
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
