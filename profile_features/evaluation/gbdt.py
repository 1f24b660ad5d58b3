"""LightGBM lambdarank ablation over the plugin's column sets, on point-in-time rows from Feast.

Training rows: candidates (positives + popularity negatives) of users active
between the two snapshot cutoffs, joined with `get_historical_features` at each
user's first interaction in the window, so they see the first snapshot. Test rows:
the same for users active after the second cutoff (second snapshot). Every column
set trains its own model on the same rows with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from profile_features.evaluation.candidates import candidate_rows
from profile_features.evaluation.metrics import mean_metrics

__all__ = ["BASELINE", "ITEM_TEXT_ONLY", "ALL_SEMANTIC", "column_sets", "historical_rows", "fit_ranker", "evaluate_gbdt"]

# What a ranker already has without the plugin: behaviour counts and ratings.
BASELINE = ["user_interaction_count", "user_mean_rating", "user_days_active", "item_interaction_count", "item_mean_rating"]

ITEM_TEXT_ONLY = "+ item text only (control)"
ALL_SEMANTIC = "+ all semantic columns"


def column_sets(components: int = 16) -> dict[str, list[str]]:
    """The ablation: the baseline, each semantic family added alone, and everything.

    "+ item text only" is a control: the item-side columns need no user profile, so
    "all" minus it is what the understanding of users adds over item content alone.
    """
    similarities = ["profile_item_similarity"]
    compressed = [f"{side}_pc_{i}" for side in ("profile", "item") for i in range(components)]
    clusters = ["profile_cluster", "item_cluster"]
    student = ["student_item_similarity", "profile_drift", "student_history_len"]
    item_text = [f"item_pc_{i}" for i in range(components)] + ["item_cluster"]
    return {
        "none": BASELINE,
        "+ similarities": BASELINE + similarities,
        "+ compressed dims": BASELINE + compressed,
        "+ clusters": BASELINE + clusters,
        "+ student columns": BASELINE + student,
        ALL_SEMANTIC: BASELINE + similarities + compressed + clusters + student,
        ITEM_TEXT_ONLY: BASELINE + item_text,
    }


def historical_rows(store, interactions: pd.DataFrame, item_ids: np.ndarray, start: datetime, end: datetime,
                    negatives: int, seed: int, service: str = "gbdt_ranker") -> pd.DataFrame:
    """Labelled candidate rows with the service's features as of each row's timestamp."""
    rows = candidate_rows(interactions, item_ids, start, end, negatives, np.random.default_rng(seed))
    frame = store.get_historical_features(entity_df=rows, features=store.get_feature_service(service)).to_df()
    if len(frame) != len(rows):  # the DuckDB offline store returns every entity row; Dask did not
        raise RuntimeError(f"get_historical_features returned {len(frame)} of {len(rows)} rows")
    return frame.sort_values(["user_id", "item_id"]).reset_index(drop=True)


def fit_ranker(train: pd.DataFrame, columns: list[str], seed: int):
    """LGBMRanker (lambdarank) on `columns`; cluster ids are categorical."""
    import lightgbm as lgb

    model = lgb.LGBMRanker(
        objective="lambdarank", n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=20,
        subsample=0.8, subsample_freq=1, random_state=seed, verbose=-1,
    )
    categorical = [c for c in columns if c.endswith("_cluster")]
    model.fit(train[columns], train.label, group=train.groupby("user_id", sort=False).size().to_numpy(),
              categorical_feature=categorical or "auto")
    return model


def evaluate_gbdt(store, interactions: pd.DataFrame, item_ids: np.ndarray, train_cutoff: datetime,
                  test_cutoff: datetime, end: datetime, seeds: Sequence[int], negatives: int = 50,
                  cold_users: Collection[str] | None = None, components: int = 16,
                  log: Callable[[str], None] = print) -> pd.DataFrame:
    """NDCG@10, Recall@10, HR@10, MRR and AUC per column set and seed.

    Returns:
        Long format: model ("lightgbm"), variant (column set), seed, slice ("all", and
        "cold" for `cold_users` when given), metric, value (mean over the slice's users
        with a positive), users.
    """
    records = []
    for seed in seeds:
        train = historical_rows(store, interactions, item_ids, train_cutoff, test_cutoff, negatives, seed)
        test = historical_rows(store, interactions, item_ids, test_cutoff, end, negatives, 1000 + seed)
        log(f"  lightgbm seed {seed}: train {len(train)} rows / {train.user_id.nunique()} users, "
            f"test {len(test)} rows / {test.user_id.nunique()} users")
        for variant, columns in column_sets(components).items():
            scored = test.assign(score=fit_ranker(train, columns, seed).predict(test[columns]))
            slices = {"all": None} | ({"cold": cold_users} if cold_users is not None else {})
            for slice_name, users in slices.items():
                values = mean_metrics(scored, "score", users=users)
                n = values.pop("users")
                records += [{"model": "lightgbm", "variant": variant, "seed": seed, "slice": slice_name,
                             "metric": metric, "value": value, "users": n} for metric, value in values.items()]
    return pd.DataFrame(records)
