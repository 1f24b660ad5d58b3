"""Train a LightGBM lambdarank ranker with and without the semantic columns.

    python examples/lightgbm_ranker.py                       # generated sample data
    python examples/lightgbm_ranker.py --dataset ml-100k     # ../shared/datasets/ml-100k

Runs the batch pipeline at two snapshot cutoffs (the 60% and 80% quantiles of
interaction time), applies the Feast repo, then builds point-in-time training
rows with `get_historical_features`: candidates of users active between the two
cutoffs (features from the first snapshot) train the model; candidates of users
active after the second cutoff (features from the second snapshot) test it.
Prints NDCG@10 on the held-out window for both column sets, over several seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.datasets import generate_sample, load_ml100k
from profile_features.pipeline import build_feature_repo, log
from profile_features.ranking import candidate_rows, mean_ndcg_at_k

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE = ["user_interaction_count", "user_mean_rating", "user_days_active", "item_interaction_count", "item_mean_rating"]
SIMILARITY = ["profile_item_similarity"]
COMPRESSED = [f"{p}_pc_{i}" for p in ("profile", "item") for i in range(16)]
CLUSTERS = ["profile_cluster", "item_cluster"]
STUDENT = ["student_item_similarity", "profile_drift", "student_history_len"]
COLUMN_SETS = {
    "without semantic columns": BASELINE,
    "+ similarity": BASELINE + SIMILARITY,
    "+ student columns": BASELINE + STUDENT,
    "+ all semantic columns": BASELINE + SIMILARITY + COMPRESSED + CLUSTERS + STUDENT,
}


def load(dataset: str, ml100k_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if dataset == "ml-100k":
        return load_ml100k(ml100k_path)
    sample = generate_sample()
    return sample.interactions, sample.items


def training_frame(store, interactions, item_ids, start, end, negatives, seed) -> pd.DataFrame:
    rows = candidate_rows(interactions, item_ids, start, end, negatives, np.random.default_rng(seed))
    frame = store.get_historical_features(entity_df=rows, features=store.get_feature_service("gbdt_ranker")).to_df()
    if len(frame) != len(rows):  # the DuckDB store must return every entity row
        raise RuntimeError(f"get_historical_features returned {len(frame)} of {len(rows)} rows")
    return frame.sort_values(["user_id", "item_id"]).reset_index(drop=True)


def fit_and_score(train: pd.DataFrame, test: pd.DataFrame, columns: list[str], seed: int) -> float:
    import lightgbm as lgb

    categorical = [c for c in columns if c.endswith("_cluster")]

    model = lgb.LGBMRanker(
        objective="lambdarank", n_estimators=200, learning_rate=0.05, num_leaves=15,
        min_child_samples=20, subsample=0.8, subsample_freq=1, colsample_bytree=1.0,
        random_state=seed, verbose=-1,
    )
    model.fit(train[columns], train.label, group=train.groupby("user_id", sort=False).size().to_numpy(),
              categorical_feature=categorical or "auto")
    scored = test.assign(score=model.predict(test[columns]))
    return mean_ndcg_at_k(scored, "score", k=10)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["sample", "ml-100k"], default="sample")
    parser.add_argument("--ml100k-path", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--workdir", type=Path, default=None, help="default: work/lightgbm-<dataset>")
    parser.add_argument("--negatives", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=30, help="student training epochs per snapshot")
    args = parser.parse_args(argv)
    from feast import FeatureStore

    workdir = (args.workdir or REPO_ROOT / "work" / f"lightgbm-{args.dataset}").resolve()
    interactions, items = load(args.dataset, args.ml100k_path)
    repo, (train_cutoff, test_cutoff) = build_feature_repo(
        interactions, items, workdir, [0.6, 0.8], student_overrides=[f"train.epochs={args.student_epochs}"])
    store = FeatureStore(repo_path=str(repo))
    end = interactions.timestamp.max() + pd.Timedelta(seconds=1)
    results: dict[str, list[float]] = {name: [] for name in COLUMN_SETS}
    for seed in range(args.seeds):
        log(f"seed {seed}: point-in-time training rows from Feast")
        train = training_frame(store, interactions, items.item_id.to_numpy(), train_cutoff, test_cutoff, args.negatives, seed)
        test = training_frame(store, interactions, items.item_id.to_numpy(), test_cutoff, end, args.negatives, 1000 + seed)
        for name, columns in COLUMN_SETS.items():
            results[name].append(fit_and_score(train, test, columns, seed))
        log(f"  train {len(train)} rows / {train.user_id.nunique()} users, test {len(test)} rows / {test.user_id.nunique()} users; "
            + ", ".join(f"{name}: {values[-1]:.4f}" for name, values in results.items()))
    print(f"\n=== LightGBM lambdarank on {args.dataset}: NDCG@10 on the held-out window ({args.seeds} seeds, "
          f"{args.negatives} popularity-sampled negatives per user) ===")
    base = np.mean(results["without semantic columns"])
    for name, values in results.items():
        values = np.array(values)
        print(f"  {name:26s} {values.mean():.4f} +/- {values.std():.4f}   lift {100 * (values.mean() / base - 1):+6.1f}%")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
