"""The Spark option: SparkSource + Spark offline store + Spark materialization engine."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from profile_features.pipeline import feast_cli
from tests.support.repo import REPO_ROOT, local_table

pytestmark = [pytest.mark.feast, pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark_repo(module_tmp, pipeline_run):
    tmp_path = module_tmp / "spark_repo"
    tmp_path.mkdir()
    repo = Path(shutil.copytree(REPO_ROOT / "examples" / "spark_feature_repo", tmp_path / "repo"))
    settings = yaml.safe_load((repo / "profile_features.yaml").read_text())
    settings["data_dir"] = str(pipeline_run["data_dir"])
    (repo / "profile_features.yaml").write_text(yaml.safe_dump(settings))
    store_yaml = yaml.safe_load((repo / "feature_store.yaml").read_text())
    store_yaml["registry"]["path"] = str(tmp_path / "registry.db")
    store_yaml["online_store"]["path"] = str(tmp_path / "online.db")
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(store_yaml))
    feast_cli(repo, "apply")
    return repo


def test_spark_engine_materializes_the_latest_snapshot(spark_repo, pipeline_run, small_sample):
    from feast import FeatureStore

    end = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    feast_cli(spark_repo, "materialize-incremental", end)  # runs the Spark engine in the CLI's process
    store = FeatureStore(repo_path=str(spark_repo))
    latest = pipeline_run["cutoffs"][-1]
    stats = pd.read_parquet(
        local_table(pipeline_run["config"], "user_stats") / f"run_date={latest:%Y-%m-%d}"
    ).set_index("user_id")
    users = stats.index[:5].tolist()
    out = store.get_online_features(
        features=["user_stats:user_interaction_count", "user_semantic:profile_pc_0"],
        entity_rows=[{"user_id": u} for u in users],
    ).to_df()
    assert out.user_interaction_count.tolist() == stats.loc[users, "user_interaction_count"].tolist()
    assert out.profile_pc_0.notna().all()


def test_spark_offline_store_point_in_time_keeps_every_row(spark_repo, pipeline_run):
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(spark_repo))
    early, late = pipeline_run["cutoffs"]
    early_stats = pd.read_parquet(
        local_table(pipeline_run["config"], "user_stats") / f"run_date={early:%Y-%m-%d}"
    ).set_index("user_id")
    user = early_stats.index[0]
    between = early + (late - early) / 2
    entity_df = pd.DataFrame(
        {
            "user_id": [user] * 4,
            "item_id": ["i00001", "i00001", "i00002", "i00003"],
            "event_timestamp": [between] * 4,
            "row": range(4),
        }
    )
    out = (
        store.get_historical_features(
            entity_df=entity_df,
            features=["user_stats:user_interaction_count", "item_stats:item_interaction_count"],
        )
        .to_df()
        .sort_values("row")
    )
    assert len(out) == 4
    assert (out.user_interaction_count == early_stats.loc[user, "user_interaction_count"]).all()
    assert np.all(out.item_interaction_count.notna())
