"""A LightGBM ranker on the `gbdt_ranker` feature service: the whole loop a ranking team runs.

    python examples/rank_with_lightgbm.py --repo feature_repo     # after `make demo`

1. Entity rows with timestamps: each interaction after the first feature snapshot is a positive
   (user, item, time); a few catalogue items the user never touched, at the same time, are negatives.
2. `get_historical_features(features=<gbdt_ranker>)`: every row gets the features as they were at
   its time (point in time: no leakage from later snapshots).
3. `LGBMRanker` (lambdarank) with one group per user, the cluster and semantic-ID columns as
   categorical features, and early stopping on the last 20% of the time range.
4. Serving: `get_online_features` for one user x the unseen catalogue, scored by the same model.

Feast returns a view's columns in an order that changes between processes: select them with
`service_columns`, so training and serving feed the model the same matrix.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.feast import load_feast_settings, service_columns

KEYS = ["user_id", "item_id"]


@dataclass(frozen=True)
class RankerRun:
    model: object  # the fitted lightgbm.LGBMRanker
    columns: list[str]  # its feature columns, in order
    categorical: list[str]
    valid_ndcg: float  # NDCG@10 on the validation groups at the best iteration
    user_id: str
    top: pd.DataFrame  # the served user's best unseen items: item_id, score


def entity_rows(interactions: pd.DataFrame, since: pd.Timestamp, negatives: int, seed: int) -> pd.DataFrame:
    """Positives after `since` (label 1) and `negatives` unseen items per positive at its time (label 0)."""
    rng = np.random.default_rng(seed)
    catalogue = interactions.item_id.unique()
    seen = interactions.groupby("user_id").item_id.agg(set)
    positives = interactions[interactions.timestamp >= since]
    rows = []
    for user, item, time in positives[["user_id", "item_id", "timestamp"]].itertuples(index=False):
        rows.append((user, item, time, 1))
        unseen = [i for i in rng.choice(catalogue, size=4 * negatives) if i not in seen[user]]
        rows += [(user, other, time, 0) for other in unseen[:negatives]]
    return pd.DataFrame(rows, columns=[*KEYS, "event_timestamp", "label"])


def feature_matrix(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model's input: the service's columns in order, as floats (NaN where Feast has no value)."""
    return frame[columns].astype("float64")


def main(argv=None) -> RankerRun:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("feature_repo"), help="applied, materialized Feast repo")
    parser.add_argument("--negatives", type=int, default=4, help="sampled negatives per positive")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import lightgbm
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(args.repo))
    data_dir = load_feast_settings(args.repo / "profile_features.yaml").data_dir
    interactions = pd.read_parquet(f"{data_dir}/validated/interactions", columns=[*KEYS, "timestamp"])
    first_snapshot = pd.read_parquet(f"{data_dir}/user_stats", columns=["event_timestamp"]).event_timestamp.min()

    # 1-2. Entity rows -> point-in-time features (DuckDB returns rows in its own order: sort them back).
    rows = entity_rows(interactions, first_snapshot, args.negatives, args.seed)
    service = store.get_feature_service("gbdt_ranker")
    columns = service_columns(service)
    training = (
        store.get_historical_features(entity_df=rows.assign(row=np.arange(len(rows))), features=service)
        .to_df()
        .sort_values("row")
    )

    # 3. One group per user, time-ordered split, categorical semantic columns, early stopping.
    valid_from = training.event_timestamp.quantile(0.8)
    train, valid = training[training.event_timestamp < valid_from], training[training.event_timestamp >= valid_from]
    train, valid = train.sort_values(["user_id", "row"]), valid.sort_values(["user_id", "row"])
    categorical = [c for c in columns if c.endswith("_cluster") or c.startswith("item_sid_")]
    model = lightgbm.LGBMRanker(
        objective="lambdarank", n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=10, verbose=-1
    )
    model.fit(
        feature_matrix(train, columns),
        train.label,
        group=train.groupby("user_id", sort=False).size().to_numpy(),
        eval_X=(feature_matrix(valid, columns),),
        eval_y=(valid.label,),
        eval_group=[valid.groupby("user_id", sort=False).size().to_numpy()],
        eval_at=[10],
        categorical_feature=categorical,
        callbacks=[lightgbm.early_stopping(30, verbose=False)],
    )
    valid_ndcg = float(model.best_score_["valid_0"]["ndcg@10"])
    print(f"trained on {len(train)} rows, best iteration {model.best_iteration_}, validation NDCG@10 {valid_ndcg:.4f}")

    # 4. Serving: the same service online, the same columns, the same model.
    user_id = interactions.user_id.value_counts().index[0]
    candidates = sorted(set(interactions.item_id) - set(interactions.item_id[interactions.user_id == user_id]))
    online = store.get_online_features(
        features=service, entity_rows=[{"user_id": user_id, "item_id": item} for item in candidates]
    ).to_df()
    scores = model.predict(feature_matrix(online, columns), num_iteration=model.best_iteration_)
    top = pd.DataFrame({"item_id": online.item_id, "score": scores}).nlargest(10, "score").reset_index(drop=True)
    print(f"top items for {user_id}:\n{top.to_string(index=False)}")
    return RankerRun(model, columns, categorical, valid_ndcg, user_id, top)


if __name__ == "__main__":
    main(sys.argv[1:])
