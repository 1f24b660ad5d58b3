"""LightGBM lambdarank over the plugin's column sets, tuned the way a ranking team tunes it.

Rows: candidates (positives + popularity negatives) of users active in a window, with
the `gbdt_ranker` service's features from `get_historical_features` as of each user's
first interaction there (see split.py for who trains, validates and is tested).

Every column set gets the same budget: a small search over the usual regularisation
knobs, each fit early-stopped on the validation users' NDCG@10, the best one chosen on
validation (on the first seed; later seeds reuse its settings and early-stop anew),
then refitted on training + validation users with the chosen number of trees. Column
sets are compared only after that, on test users they never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from profile_features.evaluation.candidates import candidate_rows
from profile_features.evaluation.metrics import per_user_metrics
from profile_features.evaluation.split import EvaluationSplit

__all__ = [
    "BASELINE",
    "ITEM_TEXT_ONLY",
    "ALL_SEMANTIC",
    "STUDENT_OVER_ITEM_TEXT",
    "is_categorical",
    "RankerParams",
    "TUNING_GRID",
    "GbdtResults",
    "column_sets",
    "historical_rows",
    "fit_ranker",
    "tune_ranker",
    "compare_column_sets",
    "evaluate_gbdt",
]

# What a ranker already has without the plugin: behaviour counts and ratings.
BASELINE = [
    "user_interaction_count",
    "user_mean_rating",
    "user_days_active",
    "item_interaction_count",
    "item_mean_rating",
]

ITEM_TEXT_ONLY = "+ item text only (control)"
ALL_SEMANTIC = "+ all semantic columns"
USER_SIDE = "+ user side only"
STUDENT_OVER_ITEM_TEXT = "+ item text + student + semantic IDs"


def column_sets(components: int = 16, sid_levels: int = 3) -> dict[str, list[str]]:
    """The ablation: the baseline, each semantic family added alone, both sides, and everything.

    "+ item text only" is a control: the item-side columns need no user profile, so
    "all" minus it is what the understanding of users adds over item content alone;
    "+ user side only" is the other half. "+ item text + student + semantic IDs" is the control
    plus the student's columns and the items' semantic-ID codes: what the student adds over content.
    """
    similarities = ["profile_item_similarity"]
    profile_dims = [f"profile_pc_{i}" for i in range(components)]
    item_dims = [f"item_pc_{i}" for i in range(components)]
    item_sids = [f"item_sid_{level}" for level in range(sid_levels)]
    student = ["student_item_similarity", "student_item_score", "profile_drift", "student_history_len"]
    return {
        "none": BASELINE,
        "+ similarities": BASELINE + similarities,
        "+ compressed dims": BASELINE + profile_dims + item_dims,
        "+ clusters": BASELINE + ["profile_cluster", "item_cluster"],
        "+ student columns": BASELINE + student,
        USER_SIDE: BASELINE + similarities + profile_dims + ["profile_cluster"] + student,
        ALL_SEMANTIC: BASELINE
        + similarities
        + profile_dims
        + item_dims
        + ["profile_cluster", "item_cluster"]
        + item_sids
        + student,
        ITEM_TEXT_ONLY: BASELINE + item_dims + ["item_cluster"],
        STUDENT_OVER_ITEM_TEXT: BASELINE + item_dims + ["item_cluster"] + item_sids + student,
    }


def is_categorical(column: str) -> bool:
    """Cluster ids and semantic-ID codes are labels, not ordered numbers."""
    return column.endswith("_cluster") or column.startswith("item_sid_")


@dataclass(frozen=True)
class RankerParams:
    """The regularisation knobs searched; everything else is fixed for every column set."""

    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 1.0
    lambda_l2: float = 0.0


# Eight settings from flexible to strongly regularised; the same list for every column set.
TUNING_GRID = (
    RankerParams(15, 20, 1.0, 0.0),
    RankerParams(7, 20, 0.8, 1.0),
    RankerParams(31, 20, 0.8, 1.0),
    RankerParams(15, 50, 0.6, 10.0),
    RankerParams(7, 100, 0.6, 10.0),
    RankerParams(31, 100, 0.8, 10.0),
    RankerParams(63, 50, 0.6, 1.0),
    RankerParams(3, 100, 0.5, 30.0),
)
MAX_TREES = 1000
EARLY_STOPPING_ROUNDS = 30
UNTUNED_TREES = 200  # when there are no validation users to stop on


def historical_rows(
    store,
    interactions: pd.DataFrame,
    item_ids: np.ndarray,
    start: datetime,
    end: datetime,
    negatives: int,
    seed: int,
    service: str = "gbdt_ranker",
) -> pd.DataFrame:
    """Labelled candidate rows with the service's features as of each row's timestamp."""
    rows = candidate_rows(interactions, item_ids, start, end, negatives, np.random.default_rng(seed))
    frame = store.get_historical_features(entity_df=rows, features=store.get_feature_service(service)).to_df()
    if len(frame) != len(rows):  # the DuckDB offline store returns every entity row; Dask did not
        raise RuntimeError(f"get_historical_features returned {len(frame)} of {len(rows)} rows")
    return frame.sort_values(["user_id", "item_id"]).reset_index(drop=True)


def _groups(frame: pd.DataFrame) -> np.ndarray:
    return frame.groupby("user_id", sort=False).size().to_numpy()


def fit_ranker(
    train: pd.DataFrame,
    columns: list[str],
    seed: int,
    params: RankerParams = RankerParams(),
    valid: pd.DataFrame | None = None,
    trees: int | None = None,
):
    """LGBMRanker (lambdarank) on `columns`; cluster ids are categorical.

    With `valid`, trains up to MAX_TREES and stops when validation NDCG@10 has not improved
    for EARLY_STOPPING_ROUNDS (`model.best_iteration_` holds the best count); else `trees`.
    Rows must be grouped by user (contiguous).
    """
    import lightgbm as lgb

    model = lgb.LGBMRanker(
        objective="lambdarank",
        n_estimators=trees or (MAX_TREES if valid is not None else UNTUNED_TREES),
        learning_rate=0.05,
        num_leaves=params.num_leaves,
        min_child_samples=params.min_data_in_leaf,
        colsample_bytree=params.feature_fraction,
        reg_lambda=params.lambda_l2,
        subsample=0.8,
        subsample_freq=1,
        random_state=seed,
        verbose=-1,
    )
    categorical = [c for c in columns if is_categorical(c)]
    extra = {}
    if valid is not None:
        extra = {
            "eval_X": (valid[columns],),
            "eval_y": (valid.label,),
            "eval_group": [_groups(valid)],
            "eval_at": [10],
            "callbacks": [lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
        }
    model.fit(train[columns], train.label, group=_groups(train), categorical_feature=categorical or "auto", **extra)
    return model


@dataclass(frozen=True)
class TunedRanker:
    params: RankerParams
    trees: int  # best iteration on validation
    valid_ndcg: float


def _valid_scores(model, valid: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return per_user_metrics(valid.assign(score=model.predict(valid[columns])), "score")


def tune_ranker(
    fit: pd.DataFrame, valid: pd.DataFrame, columns: list[str], seed: int, grid: Sequence[RankerParams] = TUNING_GRID
) -> TunedRanker:
    """The grid setting with the best validation NDCG@10 (mean over validation users)."""
    best = None
    for params in grid:
        model = fit_ranker(fit, columns, seed, params, valid)
        score = float(_valid_scores(model, valid, columns)["ndcg@10"].mean())
        if best is None or score > best.valid_ndcg:
            best = TunedRanker(params, max(1, int(model.best_iteration_ or MAX_TREES)), score)
    return best


@dataclass(frozen=True)
class GbdtResults:
    """test: long frame (model, variant, seed, slice, metric, value, users); valid: per-user
    validation NDCG@10 (variant, seed, user_id, value); params: variant -> chosen settings."""

    test: pd.DataFrame
    valid: pd.DataFrame
    params: dict[str, dict]


def _test_records(scored: pd.DataFrame, variant: str, seed: int, slices: dict[str, list[str]]) -> list[dict]:
    records = []
    for slice_name, users in slices.items():
        per_user = per_user_metrics(scored, "score", users=users)
        for metric in per_user.columns:
            records.append(
                {
                    "model": "lightgbm",
                    "variant": variant,
                    "seed": seed,
                    "slice": slice_name,
                    "metric": metric,
                    "value": float(per_user[metric].mean()) if len(per_user) else float("nan"),
                    "users": len(per_user),
                }
            )
    return records


def compare_column_sets(
    frames: Iterable[tuple[int, pd.DataFrame, pd.DataFrame]],
    valid_users: Collection[str],
    sets: dict[str, list[str]],
    slices: dict[str, Collection[str]],
    grid: Sequence[RankerParams] = TUNING_GRID,
    log: Callable[[str], None] = print,
) -> GbdtResults:
    """Tune, fit and test every column set on each seed's (seed, training rows, test rows).

    Training rows of `valid_users` validate (early stopping, the settings search, the per-user
    validation figures the recommendation reads); the final model of each set refits on all
    training rows with the validated number of trees.
    """
    valid_users = set(valid_users)
    tests, valids, chosen = [], [], {}
    for seed, train, test in frames:
        in_valid = train.user_id.isin(valid_users)
        fit, valid = train[~in_valid], train[in_valid]
        log(
            f"  lightgbm seed {seed}: fit {len(fit)} rows / {fit.user_id.nunique()} users, valid {len(valid)} rows / "
            f"{valid.user_id.nunique()} users, test {len(test)} rows / {test.user_id.nunique()} users"
        )
        for variant, columns in sets.items():
            if valid.empty:
                model = fit_ranker(train, columns, seed)
            else:
                if variant not in chosen:  # tuned on the first seed, reused (same budget for every set)
                    chosen[variant] = tune_ranker(fit, valid, columns, seed, grid)
                stopped = fit_ranker(fit, columns, seed, chosen[variant].params, valid)
                per_user = _valid_scores(stopped, valid, columns)["ndcg@10"]
                valids.append(
                    pd.DataFrame(
                        {"variant": variant, "seed": seed, "user_id": per_user.index, "value": per_user.to_numpy()}
                    )
                )
                trees = max(1, int(stopped.best_iteration_ or MAX_TREES))
                model = fit_ranker(train, columns, seed, chosen[variant].params, trees=trees)
            tests += _test_records(test.assign(score=model.predict(test[columns])), variant, seed, slices)
        first = next(iter(slices), None)
        log(
            f"  lightgbm seed {seed}, {first} users: "
            + ", ".join(
                f"{r['variant']} {r['value']:.4f}"
                for r in tests
                if r["seed"] == seed and r["slice"] == first and r["metric"] == "ndcg@10"
            )
        )
    valid_frame = (
        pd.concat(valids, ignore_index=True)
        if valids
        else pd.DataFrame(columns=["variant", "seed", "user_id", "value"])
    )
    params = {
        variant: {**asdict(t.params), "trees_on_first_seed": t.trees, "valid_ndcg@10": t.valid_ndcg}
        for variant, t in chosen.items()
    }
    return GbdtResults(pd.DataFrame(tests), valid_frame, params)


def evaluate_gbdt(
    store,
    interactions: pd.DataFrame,
    item_ids: np.ndarray,
    split: EvaluationSplit,
    seeds: Sequence[int],
    negatives: int = 50,
    slices: dict[str, Collection[str]] | None = None,
    sets: dict[str, list[str]] | None = None,
    grid: Sequence[RankerParams] = TUNING_GRID,
    log: Callable[[str], None] = print,
) -> GbdtResults:
    """`compare_column_sets` on point-in-time rows from Feast: candidates of the training window's users
    (training snapshot) and of the test window's users (test snapshot), negatives drawn anew per seed.

    Args:
        split: populations and cutoffs; test users' slices come from `slices` (default `split.slices`).
        sets: column sets (default `column_sets()`); the first is the baseline.
    """

    def frames():
        for seed in seeds:
            yield (
                seed,
                historical_rows(store, interactions, item_ids, split.train_cutoff, split.test_cutoff, negatives, seed),
                historical_rows(store, interactions, item_ids, split.test_cutoff, split.end, negatives, 1000 + seed),
            )

    return compare_column_sets(
        frames(), split.valid_users, sets or column_sets(), slices if slices is not None else split.slices, grid, log
    )
