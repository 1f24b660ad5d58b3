"""`profile-features demo`: every stage on generated sample data, ending in Feast reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from profile_features.config import JobConfig, SampleConfig, SparkConfig
from profile_features.datasets import generate_sample
from profile_features.datasets.sample import SampleData
from profile_features.feast.settings import load_feast_settings
from profile_features.pipeline import (
    apply_and_materialize,
    log,
    prepare_repo,
    run_pipeline,
    snapshot_cutoffs,
    write_inputs,
)

__all__ = ["ensure_repo", "run_demo", "rank_for_user", "add_demo_bad_rows", "stream_new_user"]


def add_demo_bad_rows(sample: SampleData) -> SampleData:
    """Append one row of each kind the validator rejects, so the demo shows the path."""
    first = sample.interactions.iloc[0]
    bad = pd.DataFrame(
        [
            {**first, "user_id": None},
            {**first, "item_id": "no-such-item"},
            {**first},  # exact duplicate
        ]
    )
    interactions = pd.concat([sample.interactions, bad], ignore_index=True)
    # An unparseable timestamp cannot live in a timestamp column: write it as text.
    interactions["timestamp"] = interactions["timestamp"].map(lambda t: t.isoformat())
    interactions.loc[len(interactions)] = {**first, "timestamp": "yesterday-ish"}
    items = pd.concat(
        [
            sample.items,
            pd.DataFrame(
                [
                    {**sample.items.iloc[0], "title": "A duplicate id"},
                    {**sample.items.iloc[1], "item_id": "i-empty", "title": ""},
                ]
            ),
        ],
        ignore_index=True,
    )
    return SampleData(items=items, interactions=interactions, user_tastes=sample.user_tastes)


def rank_for_user(repo: Path, user_id: str, item_ids: list[str], k: int = 10) -> tuple[dict, pd.DataFrame]:
    """Online read: the user's features, and candidates ranked by profile x item similarity."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    user = store.get_online_features(
        features=[
            "user_profile:profile_text",
            "user_profile:generator",
            "user_profile:encoder",
            "user_profile:history_hash",
            "user_stats:user_interaction_count",
            "user_stats:user_mean_rating",
            "user_semantic:profile_cluster",
            "user_student:profile_drift",
            "user_student:student_checkpoint_id",
        ],
        entity_rows=[{"user_id": user_id}],
    ).to_dict()
    candidates = store.get_online_features(
        features=store.get_feature_service("gbdt_ranker"),
        entity_rows=[{"user_id": user_id, "item_id": item} for item in item_ids],
    ).to_df()
    ranked = candidates.sort_values("profile_item_similarity", ascending=False).head(k)
    return {key: values[0] for key, values in user.items()}, ranked


def stream_new_user(spark, config: JobConfig, repo: Path, items: list[str], end) -> tuple[str, dict]:
    """A user who signs up after the last snapshot and clicks three items: their events land in a folder, the
    streaming job (caught up once) re-scores them, and their student features are online. Returns them."""
    from feast import FeatureStore

    from profile_features.streaming.job import run_stream

    user_id, events = "new-user-demo", Path(config.data_dir) / "raw" / "events"
    events.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(end)
    start = start.tz_localize("UTC") if start.tzinfo is None else start  # cutoffs are UTC
    times = [int((start + pd.Timedelta(minutes=m)).timestamp()) for m in (1, 2, 3)]
    rows = "".join(f"{user_id},{item},{t},5\n" for item, t in zip(items[:3], times))
    (events / "signup.csv").write_text("user_id,item_id,timestamp,rating\n" + rows)
    stream = {"source": {"path": str(events)}, "available_now": True, "feature_repo": str(repo)}
    run_stream(spark, JobConfig.model_validate({**config.model_dump(), "stream": stream}))
    online = FeatureStore(repo_path=str(repo)).get_online_features(
        features=["user_student:student_history_len", "user_student:student_variant"],
        entity_rows=[{"user_id": user_id}],
    )
    return user_id, {k: v[0] for k, v in online.to_dict(include_event_timestamps=True).items()}


SHIPPED_REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def ensure_repo(repo: Path) -> Path:
    """`repo` as a feature repo: used as it is when it has `profile_features.yaml`, filled with a copy
    of the shipped definitions when it is new or empty; any other folder is refused (FileNotFoundError)."""
    repo = repo.resolve()
    if (repo / "profile_features.yaml").exists():
        return repo
    if repo.exists() and any(repo.iterdir()):
        raise FileNotFoundError(
            f"{repo}: not a profile-features feature repo (no profile_features.yaml) and not empty; "
            f"pass a new or empty folder, or the shipped feature_repo/"
        )
    prepare_repo(SHIPPED_REPO, repo)
    log(f"created a feature repo at {repo} (a copy of {SHIPPED_REPO})")
    return repo


def run_demo(repo: Path, sample: SampleConfig, spark_config: SparkConfig) -> None:
    from profile_features.spark.session import build_spark

    repo = ensure_repo(repo)
    data_dir = Path(load_feast_settings(repo / "profile_features.yaml").data_dir)
    log(f"generating sample data: {sample.users} users, {sample.items} items (seed {sample.seed})")
    data = generate_sample(sample)
    shown = add_demo_bad_rows(data)
    inputs = write_inputs(shown.interactions, shown.items, data_dir / "raw")
    log(
        f"  {len(data.interactions)} interactions, plus {len(shown.interactions) - len(data.interactions)} interaction "
        f"and {len(shown.items) - len(data.items)} item rows that are broken on purpose"
    )
    # The student's default schedule (early stopping), shorter histories: the demo shows the path and a student the
    # guard ships; benchmarks/student_quality.py measures the quality.
    config = JobConfig(
        data_dir=str(data_dir),
        inputs=inputs,
        spark=spark_config,
        student={"overrides": ["body.max_len=50"]},
    )
    # Two snapshots, as a weekly job would leave them: training rows between them
    # join the older one, online serving gets the newer one.
    cutoffs = snapshot_cutoffs(data.interactions["timestamp"], [0.7, 1.0])
    log("starting Spark")
    spark = build_spark(config.spark)
    run_pipeline(spark, config, cutoffs)
    apply_and_materialize(repo)

    user_id = data.user_tastes.user_id.iloc[0]
    features, ranked = rank_for_user(repo, user_id, data.items.item_id.tolist())
    taste = data.user_tastes.set_index("user_id").loc[user_id]
    titles = data.items.set_index("item_id").loc[ranked.item_id]
    print("\n=== Outputs ===")
    for path in sorted(p for p in data_dir.iterdir() if not p.name.startswith("_")):
        print(f"  {path}")
    print(f"  Feast repo: {repo} (registry and SQLite online store in {data_dir})")
    print(f"\n=== Online features of user {user_id} ===")
    for key, value in features.items():
        print(f"  {key}: {value}")
    print(
        f"  (hidden truth from the generator: favourite genres {taste.genre_weights}, era {taste.era}, "
        f"shifted to {taste.shifted_to})"
    )
    print(f"\n=== Top {len(ranked)} of {len(data.items)} items for {user_id} by profile x item similarity (online) ===")
    for rank, (row, (_, item)) in enumerate(zip(ranked.itertuples(index=False), titles.iterrows()), start=1):
        print(
            f"  {rank:2d}. {row.item_id} {row.profile_item_similarity:.3f} (student "
            f"{row.student_item_similarity:.3f})  "
            f"{item.title} ({item.year}) [{item.genres}]"
        )
    log("streaming three events of a user who signed up after the last snapshot")
    new_user, streamed = stream_new_user(spark, config, repo, ranked.item_id.tolist(), cutoffs[-1])
    print(f"\n=== {new_user}, three events later (spark_jobs/stream_student.py, no batch run) ===")
    for key, value in streamed.items():
        print(f"  {key}: {value}")
    spark.stop()
