"""Operating the shipped repo: `feast serve`, repeated materialization, Redis outages."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from profile_features.pipeline import apply_and_materialize, feast_cli, prepare_repo
from tests.support.repo import REPO_ROOT, make_repo
from tests.support.servers import free_port, start_redis, stop_redis

pytestmark = pytest.mark.feast


def online_snapshot(store, users, items):
    return (
        store.get_online_features(
            features=store.get_feature_service("gbdt_ranker"),
            entity_rows=[{"user_id": u, "item_id": i} for u in users for i in items],
        )
        .to_df()
        .sort_values(["user_id", "item_id"])
        .reset_index(drop=True)
    )


def test_materialize_again_is_idempotent(tmp_path, pipeline_run, small_sample):
    from feast import FeatureStore

    repo = make_repo(tmp_path, pipeline_run["data_dir"])
    apply_and_materialize(repo)
    store = FeatureStore(repo_path=str(repo))
    users, items = small_sample.user_tastes.user_id[:3].tolist(), small_sample.items.item_id[:4].tolist()
    before = online_snapshot(store, users, items)
    end = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    feast_cli(repo, "materialize", "2000-01-01T00:00:00", end)  # full re-run over the same data
    feast_cli(repo, "materialize-incremental", end)
    after = online_snapshot(FeatureStore(repo_path=str(repo)), users, items)
    pd.testing.assert_frame_equal(before, after)
    assert before.profile_item_similarity.notna().all()


@pytest.mark.slow
def test_feast_serve_answers_with_the_similarity(tmp_path, pipeline_run, small_sample):
    repo = make_repo(tmp_path, pipeline_run["data_dir"])
    apply_and_materialize(repo)
    port = free_port()
    feast = Path(sys.executable).with_name("feast")
    server = subprocess.Popen(
        [str(feast), "-c", str(repo), "serve", "-p", str(port), "--no-access-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = json.dumps(
            {
                "feature_service": "gbdt_ranker",
                "entities": {
                    "user_id": [small_sample.user_tastes.user_id[0]] * 2,
                    "item_id": small_sample.items.item_id[:2].tolist(),
                },
            }
        ).encode()
        for _ in range(240):
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/get-online-features",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                response = json.loads(urllib.request.urlopen(request, timeout=10).read())
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"feast serve exited: {server.stderr.read()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("feast serve did not answer")
        names = response["metadata"]["feature_names"]
        similarity = response["results"][names.index("profile_item_similarity")]["values"]
        assert len(similarity) == 2 and all(-1.0 <= v <= 1.0 for v in similarity)
        assert "profile_pc_0" in names and "item_cluster" in names
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.redis
def test_redis_outage_fails_clearly_and_recovers(tmp_path, monkeypatch, pipeline_run, small_sample):
    """Stop the real redis-server: apply/materialize and reads fail naming the server;
    after a restart on the same port the next run succeeds."""
    from feast import FeatureStore

    port = free_port()
    process = start_redis(port, tmp_path)
    repo = prepare_repo(REPO_ROOT / "feature_repo", tmp_path / "repo")
    (repo / "profile_features.yaml").write_text(f"data_dir: {pipeline_run['data_dir']}\n")
    monkeypatch.setenv("REDIS_CONNECTION_STRING", f"127.0.0.1:{port}")
    store_yaml = repo / "feature_store.redis.yaml"
    apply_and_materialize(repo, store_yaml=store_yaml)
    user, item = small_sample.user_tastes.user_id[0], small_sample.items.item_id[0]
    features = ["user_item_similarity:profile_item_similarity"]
    assert (
        FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml)
        .get_online_features(features=features, entity_rows=[{"user_id": user, "item_id": item}])
        .to_df()
        .profile_item_similarity.notna()
        .all()
    )

    stop_redis(process)
    from profile_features.feast.health import OnlineStoreUnavailable

    with pytest.raises(OnlineStoreUnavailable, match=rf"Redis online store at 127.0.0.1:{port} is unreachable"):
        apply_and_materialize(repo, store_yaml=store_yaml)
    # Feast itself fails too as soon as it has rows to write
    with pytest.raises(RuntimeError, match=rf"(?s)materialize.*{port}"):
        feast_cli(
            repo,
            "materialize",
            "2000-01-01T00:00:00",
            pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S"),
            store_yaml=store_yaml,
        )
    import redis

    with pytest.raises(redis.ConnectionError, match=str(port)):
        FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml).get_online_features(
            features=features, entity_rows=[{"user_id": user, "item_id": item}]
        )

    process = start_redis(port, tmp_path)  # back, and empty: nothing survived the restart
    try:
        from profile_features.feast.materialize import OnlineStoreBehind, materialize_repo

        # The registry says everything is loaded; reading entities back says otherwise, and --reload fixes it.
        with pytest.raises(OnlineStoreBehind, match="have no online row"):
            apply_and_materialize(repo, store_yaml=store_yaml, end=pd.Timestamp.now(tz="UTC").to_pydatetime())
        materialize_repo(repo, store_yaml=store_yaml, reload=True)
        feast_cli(
            repo,
            "materialize",
            "2000-01-01T00:00:00",
            (pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S"),
            store_yaml=store_yaml,
        )
        out = (
            FeatureStore(repo_path=str(repo), fs_yaml_file=store_yaml)
            .get_online_features(features=features, entity_rows=[{"user_id": user, "item_id": item}])
            .to_df()
        )
        assert out.profile_item_similarity.notna().all()
    finally:
        stop_redis(process)
