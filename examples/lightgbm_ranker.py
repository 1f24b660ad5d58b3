"""Train a LightGBM lambdarank ranker with and without the semantic columns.

This is the evaluation (column sets, seeds, metrics); examples/rank_with_lightgbm.py is the short
loop to copy into your own code.

    python examples/lightgbm_ranker.py                       # generated sample data
    python examples/lightgbm_ranker.py --dataset ml-100k     # ../shared/datasets/ml-100k

Runs the batch pipeline at two snapshot cutoffs (the 60% and 80% quantiles of
interaction time), applies the Feast repo, then builds point-in-time training
rows with `get_historical_features`: candidates of users active between the two
cutoffs (features from the first snapshot) train the model; candidates of users
active after the second cutoff (features from the second snapshot) test it.
Each column set is tuned on validation users (the last 20% of training-window users to
arrive), early-stopped, and refitted; the script prints NDCG@10, Recall@10, HR@10, MRR and
AUC on test users with a history for each column set (none, similarities, compressed dims,
clusters, student, user side, all, and the item-text-only control) over several seeds, and
the column set validation recommends. `profile-features evaluate` runs this plus the
two-tower model, the students and the cold-start slice and writes a report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from profile_features.datasets import generate_sample, load_ml100k
from profile_features.evaluation.gbdt import column_sets, evaluate_gbdt
from profile_features.evaluation.report import summarise
from profile_features.evaluation.selection import recommend
from profile_features.evaluation.split import build_split
from profile_features.pipeline import build_feature_repo, log

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["sample", "ml-100k"], default="sample")
    parser.add_argument("--ml100k-path", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--workdir", type=Path, default=None, help="default: work/lightgbm-<dataset>")
    parser.add_argument("--negatives", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    from feast import FeatureStore

    workdir = (args.workdir or REPO_ROOT / "work" / f"lightgbm-{args.dataset}").resolve()
    if args.dataset == "ml-100k":
        interactions, items = load_ml100k(args.ml100k_path)
    else:
        sample = generate_sample()
        interactions, items = sample.interactions, sample.items
    repo, cutoffs = build_feature_repo(interactions, items, workdir, [0.6, 0.8])
    end = interactions.timestamp.max() + pd.Timedelta(seconds=1)
    split = build_split(interactions, tuple(cutoffs), end)
    gbdt = evaluate_gbdt(
        FeatureStore(repo_path=str(repo)),
        interactions,
        items.item_id.to_numpy(),
        split,
        range(args.seeds),
        args.negatives,
        slices={"all": split.slices["all"]},
        log=log,
    )
    results = gbdt.test
    summary = summarise(results)
    print(
        f"\n=== LightGBM lambdarank on {args.dataset}: held-out window, {args.seeds} seeds, "
        f"{args.negatives} popularity-sampled negatives per user (mean +/- std) ==="
    )
    metrics = list(dict.fromkeys(summary.metric))
    print(f"  {'column set':28s} " + " ".join(f"{m:>17s}" for m in metrics) + "   NDCG@10 lift")
    for variant, rows in summary.groupby("variant", sort=False):
        rows = rows.set_index("metric")
        print(
            f"  {variant:28s} "
            + " ".join(f"{rows.at[m, 'mean']:.4f} +/- {rows.at[m, 'std']:.4f}" for m in metrics)
            + f"   {100 * rows.at['ndcg@10', 'lift']:+6.1f}%"
        )
    choice = recommend(gbdt.valid, {name: len(columns) for name, columns in column_sets().items()})
    print(f"\nrecommended on validation users: {choice.variant} ({choice.reason})")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
