"""LightGBM lambdarank over the plugin's column sets, tuned the way a ranking team tunes it.

Rows: candidates (positives + popularity negatives) of users active in a window, with
the `gbdt_ranker` service's features from `get_historical_features` as of each user's
first interaction there (see split.py for who trains, validates and is tested).

Every column set gets the same budget: a small search over the usual regularisation
knobs (first seed), then cross-validation by user over every training user: each fold
is scored by a model fitted on the other folds and early-stopped on one of them, so every
training user has an out-of-fold validation figure (what the recommendation reads; a
held-out tail of late arrivals left a few dozen users on typical data). The final model
refits on all training rows with the folds' median tree count. Column sets are compared
on test users only after that.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from profile_features.evaluation.candidates import candidate_rows
from profile_features.evaluation.split import EvaluationSplit
from profile_features.metrics import per_user_metrics
from profile_features.schemas import is_sid_column, sid_column_names

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
    "user_folds",
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
    item_sids = sid_column_names(sid_levels)
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
    return column.endswith("_cluster") or is_sid_column(column)


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
# Below this many training rows LightGBM runs on one thread: its OpenMP threads spin-wait between the
# many tiny per-tree steps, and on a busy 2-core machine 8 fits took 23.4 s with two threads against
# 0.6 s with one (the same models). Larger data gets every core.
ONE_THREAD_BELOW_ROWS = 200_000


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
        n_estimators=trees or MAX_TREES,
        learning_rate=0.05,
        num_leaves=params.num_leaves,
        min_child_samples=params.min_data_in_leaf,
        colsample_bytree=params.feature_fraction,
        reg_lambda=params.lambda_l2,
        subsample=0.8,
        subsample_freq=1,
        random_state=seed,
        verbose=-1,
        n_jobs=1 if len(train) < ONE_THREAD_BELOW_ROWS else None,
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
    """test: long frame (model, variant, seed, slice, metric, value, users) of slice means; test_per_user and
    valid: per-user NDCG@10 (variant, seed, user_id, value) on test users and, out of fold, on every training
    user; params: variant -> chosen settings."""

    test: pd.DataFrame
    valid: pd.DataFrame
    params: dict[str, dict]
    test_per_user: pd.DataFrame | None = None


def _test_records(per_user: pd.DataFrame, variant: str, seed: int, slices: dict[str, Collection[str]]) -> list[dict]:
    records = []
    for slice_name, users in slices.items():
        rows = per_user[per_user.index.isin(set(users))]
        for metric in rows.columns:
            records.append(
                {
                    "model": "lightgbm",
                    "variant": variant,
                    "seed": seed,
                    "slice": slice_name,
                    "metric": metric,
                    "value": float(rows[metric].mean()) if len(rows) else float("nan"),
                    "users": len(rows),
                }
            )
    return records


def user_folds(users: Iterable[str], folds: int) -> dict[str, int]:
    """user -> fold in 0..folds-1, from a hash of the id alone: the same user is in the same fold for
    every seed and column set, whatever order the rows come in."""
    return {user: zlib.crc32(str(user).encode()) % folds for user in users}


def _per_user_frame(variant: str, seed: int, per_user: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"variant": variant, "seed": seed, "user_id": per_user.index, "value": per_user.to_numpy()})


def _cross_validate(
    train: pd.DataFrame, columns: list[str], seed: int, params: RankerParams, fold_of: pd.Series, folds: int
) -> tuple[pd.Series, list[int]]:
    """Out-of-fold NDCG@10 of every training user, and each fold's early-stopped tree count.

    Fold k is scored by a model fitted on the other folds but one; fold k + 1 stops it early, so no
    user's figure comes from a model that saw, or was stopped on, that user.
    """
    scores, trees = [], []
    for k in range(folds):
        scored, stopper = fold_of == k, fold_of == (k + 1) % folds
        fit, stop, held = train[~scored & ~stopper], train[stopper], train[scored]
        if fit.empty or stop.empty or held.empty:
            continue
        model = fit_ranker(fit, columns, seed, params, stop)
        trees.append(max(1, int(model.best_iteration_ or MAX_TREES)))
        scores.append(_valid_scores(model, held, columns)["ndcg@10"])
    return (pd.concat(scores) if scores else pd.Series(dtype=float)), trees


def compare_column_sets(
    frames: Iterable[tuple[int, pd.DataFrame, pd.DataFrame]],
    sets: dict[str, list[str]],
    slices: dict[str, Collection[str]],
    folds: int = 5,
    grid: Sequence[RankerParams] = TUNING_GRID,
    log: Callable[[str], None] = print,
    settled: dict[str, dict] | None = None,
) -> GbdtResults:
    """Tune, cross-validate, fit and test every column set on each seed's (seed, training rows, test rows).

    Every training user is validated, out of fold (`_cross_validate`, folds by user): these per-user
    figures are what the recommendation reads. The settings are searched once per set (first seed,
    fold 0's split); the final model of each set refits on all training rows with the folds' median
    tree count and ranks the test rows.

    Args:
        settled: an earlier result's `params` (same sets and seeds): each set's settings and per-seed tree
            counts are taken from it, so nothing is tuned or cross-validated (`valid` comes back empty) and
            only the final models are fitted and tested. The cold run uses it: its figures are test-only.
    """
    if folds < 3:
        raise ValueError(f"folds must be at least 3 (fit, early stopping and scoring need one each), got {folds}")
    tests, test_users, valids, chosen, final_trees = [], [], [], {}, {}
    for position, (seed, train, test) in enumerate(frames):
        fold_of = train.user_id.map(user_folds(train.user_id.unique(), folds))
        log(
            f"  lightgbm seed {seed}: train {len(train)} rows / {train.user_id.nunique()} users "
            + ("(settings and trees settled earlier)" if settled else f"({folds} folds by user)")
            + f", test {len(test)} rows / {test.user_id.nunique()} users"
        )
        for variant, columns in sets.items():
            if settled:
                earlier = settled[variant]
                if variant not in chosen:
                    fields = {name: earlier[name] for name in RankerParams.__dataclass_fields__}
                    chosen[variant] = TunedRanker(
                        RankerParams(**fields), earlier["trees_on_first_seed"], earlier["valid_ndcg@10"]
                    )
                final_trees.setdefault(variant, []).append(earlier["final_trees_per_seed"][position])
            else:
                if variant not in chosen:  # tuned on the first seed, reused (same budget for every set)
                    fit, stop = train[(fold_of != 0) & (fold_of != 1)], train[fold_of == 1]
                    chosen[variant] = tune_ranker(fit, stop, columns, seed, grid)
                per_user, trees = _cross_validate(train, columns, seed, chosen[variant].params, fold_of, folds)
                valids.append(_per_user_frame(variant, seed, per_user))
                final_trees.setdefault(variant, []).append(int(np.median(trees or [1])))
            model = fit_ranker(train, columns, seed, chosen[variant].params, trees=final_trees[variant][-1])
            scored = per_user_metrics(test.assign(score=model.predict(test[columns])), "score")
            tests += _test_records(scored, variant, seed, slices)
            test_users.append(_per_user_frame(variant, seed, scored["ndcg@10"]))
        first = next(iter(slices), None)
        log(
            f"  lightgbm seed {seed}, {first} users: "
            + ", ".join(
                f"{r['variant']} {r['value']:.4f}"
                for r in tests
                if r["seed"] == seed and r["slice"] == first and r["metric"] == "ndcg@10"
            )
        )
    empty = pd.DataFrame(columns=["variant", "seed", "user_id", "value"])
    params = {
        variant: {
            **asdict(t.params),
            "trees_on_first_seed": t.trees,
            "valid_ndcg@10": t.valid_ndcg,
            "final_trees_per_seed": final_trees[variant],
        }
        for variant, t in chosen.items()
    }
    return GbdtResults(
        pd.DataFrame(tests),
        pd.concat(valids, ignore_index=True) if valids else empty,
        params,
        pd.concat(test_users, ignore_index=True) if test_users else empty,
    )


def evaluate_gbdt(
    store,
    interactions: pd.DataFrame,
    item_ids: np.ndarray,
    split: EvaluationSplit,
    seeds: Sequence[int],
    negatives: int = 50,
    slices: dict[str, Collection[str]] | None = None,
    sets: dict[str, list[str]] | None = None,
    folds: int = 5,
    grid: Sequence[RankerParams] = TUNING_GRID,
    log: Callable[[str], None] = print,
    settled: dict[str, dict] | None = None,
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
        frames(), sets or column_sets(), slices if slices is not None else split.slices, folds, grid, log, settled
    )
