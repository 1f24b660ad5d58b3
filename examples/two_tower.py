"""Train a PyTorch two-tower retrieval model with and without the semantic inputs.

This is the evaluation (column sets, seeds, metrics); examples/retrieve_with_two_tower.py is the short
loop to copy into your own code.

    python examples/two_tower.py                       # generated sample data
    python examples/two_tower.py --dataset ml-100k     # ../shared/datasets/ml-100k

Runs the batch pipeline at two snapshot cutoffs (the 60% and 80% quantiles of
interaction time) and applies the Feast repo. Training pairs of users active
between the cutoffs get the `two_tower` feature service's vectors from
`get_historical_features` (the first snapshot); after `feast materialize`, the test
users' and all items' vectors are read with `get_online_features` (the second
snapshot) and the whole catalogue, minus what each user had seen, is ranked against
the items they interact with after the second cutoff. Both variants (ID embeddings
only; plus the student, profile and item text embeddings) share budget and seeds.
The "cold" slice is the test users with 1..5 interactions before the test cutoff.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from profile_features.datasets import generate_sample, load_ml100k
from profile_features.evaluation.rankers.two_tower import VARIANTS, evaluate_two_tower
from profile_features.evaluation.split import build_split
from profile_features.pipeline import build_feature_repo, feast_cli, log, prepare_repo, snapshot_cutoffs

REPO_ROOT = Path(__file__).resolve().parents[1]
QUANTILES = [0.6, 0.8]


def load(dataset: str, ml100k_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if dataset == "ml-100k":
        return load_ml100k(ml100k_path)
    sample = generate_sample()
    return sample.interactions, sample.items


def reuse_repo(workdir: Path, interactions: pd.DataFrame) -> tuple[Path, list]:
    """A repo an earlier run built from the same data: refresh its definitions and apply them."""
    if not (workdir / "repo" / "data" / "histories").exists():
        raise SystemExit(f"--reuse: no pipeline tables under {workdir / 'repo' / 'data'}")
    repo = prepare_repo(REPO_ROOT / "feature_repo", workdir / "repo")
    feast_cli(repo, "apply")
    return repo, snapshot_cutoffs(interactions.timestamp, QUANTILES)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per slice, metric and variant, and the lift over no semantic inputs."""
    table = (
        results.groupby(["slice", "metric", "variant"], sort=False)
        .agg(mean=("value", "mean"), std=("value", lambda v: v.std(ddof=0)), users=("users", "first"))
        .reset_index()
    )
    base = table[table.variant == "without semantic inputs"].set_index(["slice", "metric"])["mean"]
    base = base.reindex(pd.MultiIndex.from_frame(table[["slice", "metric"]])).to_numpy()
    return table.assign(lift=table["mean"] / base - 1)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["sample", "ml-100k"], default="sample")
    parser.add_argument("--ml100k-path", type=Path, default=REPO_ROOT.parent / "shared" / "datasets" / "ml-100k")
    parser.add_argument("--workdir", type=Path, default=None, help="default: work/two-tower-<dataset>")
    parser.add_argument("--reuse", action="store_true", help="use the pipeline tables already in --workdir")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=50, help="at most; early-stopped on validation users")
    args = parser.parse_args(argv)

    workdir = (args.workdir or REPO_ROOT / "work" / f"two-tower-{args.dataset}").resolve()
    interactions, items = load(args.dataset, args.ml100k_path)
    if args.reuse:
        repo, (train_cutoff, test_cutoff) = reuse_repo(workdir, interactions)
    else:
        repo, (train_cutoff, test_cutoff) = build_feature_repo(interactions, items, workdir, QUANTILES)
    end = interactions.timestamp.max() + pd.Timedelta(seconds=1)
    split = build_split(interactions, (train_cutoff, test_cutoff), end)
    results = evaluate_two_tower(
        repo,
        interactions,
        train_cutoff,
        test_cutoff,
        end,
        range(args.seeds),
        slices=split.slices,
        epochs=args.epochs,
        valid_users=split.valid_users,
        log=log,
    ).test
    table = summary(results)
    print(
        f"\n=== two-tower retrieval on {args.dataset}: the whole catalogue ranked for each test user "
        f"({args.seeds} seeds, at most {args.epochs} epochs) ==="
    )
    for (slice_name, users), rows in table.groupby(["slice", "users"], sort=False):
        print(f"\n  slice {slice_name} ({users} users with a held-out item)")
        for metric, group in rows.groupby("metric", sort=False):
            for row in group.set_index("variant").reindex(list(VARIANTS)).itertuples():
                print(f"  {metric:10s} {row.Index:24s} {row.mean:.4f} +/- {row.std:.4f}   lift {100 * row.lift:+6.1f}%")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
