"""The shipped Redis configuration against a real redis-server started by the test session."""

import numpy as np
import pandas as pd
import pytest
import yaml

from profile_features.pipeline import apply_and_materialize, prepare_repo

pytestmark = [pytest.mark.redis, pytest.mark.feast]


def test_redis_serves_the_same_features_as_the_tables(tmp_path, monkeypatch, redis_server, pipeline_run):
    from feast import FeatureStore

    from tests.integration.test_feast_repo import cosine, table
    from tests.support.repo import REPO_ROOT

    repo = prepare_repo(REPO_ROOT / "feature_repo", tmp_path / "repo")
    settings = yaml.safe_load((repo / "profile_features.yaml").read_text())
    settings["data_dir"] = str(pipeline_run["data_dir"])
    (repo / "profile_features.yaml").write_text(yaml.safe_dump(settings))
    monkeypatch.setenv("REDIS_CONNECTION_STRING", f"{redis_server['host']}:{redis_server['port']}")
    store_yaml = repo / "feature_store.redis.yaml"
    apply_and_materialize(repo, store_yaml=store_yaml)

    import redis

    client = redis.Redis(host=redis_server["host"], port=redis_server["port"])
    keys = client.keys("*")
    assert len(keys) > 0
    assert 0 < client.ttl(keys[0]) <= 2592000  # key TTL from the shipped config

    store = FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml)
    latest = pipeline_run["cutoffs"][-1]
    users, items = (
        table(pipeline_run, "user_profile_embeddings", latest),
        table(pipeline_run, "item_text_embeddings", latest),
    )
    user_id = users.index[1]
    out = store.get_online_features(
        features=[
            "user_profile:profile_embedding",
            "user_profile:history_hash",
            "user_item_similarity:profile_item_similarity",
        ],
        entity_rows=[{"user_id": user_id, "item_id": item} for item in items.index[:5]],
    ).to_df()
    np.testing.assert_allclose(out.profile_embedding.iloc[0], users.loc[user_id, "profile_embedding"], atol=1e-6)
    assert out.history_hash.iloc[0] == users.loc[user_id, "history_hash"]
    for row in out.itertuples():
        assert row.profile_item_similarity == pytest.approx(
            cosine(users.loc[user_id, "profile_embedding"], items.loc[row.item_id, "item_text_embedding"]), abs=1e-5
        )
    assert pd.notna(out.profile_item_similarity).all()
