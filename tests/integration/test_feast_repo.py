"""A real Feast repo built with profile_features.feast: apply, materialize, online and
point-in-time historical reads against the tables of the session's pipeline run."""

import numpy as np
import pandas as pd
import pytest

from tests.support.repo import local_table

pytestmark = pytest.mark.feast


def table(pipeline_run, name, cutoff):
    frame = pd.read_parquet(local_table(pipeline_run["config"], name) / f"run_date={cutoff:%Y-%m-%d}")
    return frame.set_index(frame.columns[0])


def cosine(u, v):
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


def test_online_vectors_and_similarity(materialized, pipeline_run, small_sample):
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(materialized))  # registry read back from disk: ODFV from proto
    latest = pipeline_run["cutoffs"][-1]
    users, items = (
        table(pipeline_run, "user_profile_embeddings", latest),
        table(pipeline_run, "item_text_embeddings", latest),
    )
    user_id = users.index[0]
    candidates = small_sample.items.item_id.tolist()[:12]
    online = store.get_online_features(
        features=[
            "user_profile:profile_embedding",
            "user_profile:generator",
            "item_text:item_text_embedding",
            "user_item_similarity:profile_item_similarity",
        ],
        entity_rows=[{"user_id": user_id, "item_id": item} for item in candidates],
    ).to_df()
    assert len(online) == len(candidates)
    np.testing.assert_allclose(online.profile_embedding.iloc[0], users.loc[user_id, "profile_embedding"], atol=1e-6)
    for row in online.itertuples():
        expected = cosine(users.loc[user_id, "profile_embedding"], items.loc[row.item_id, "item_text_embedding"])
        assert row.profile_item_similarity == pytest.approx(expected, abs=1e-5)
    assert set(online.generator) == {"rule_based"}

    service = store.get_online_features(
        features=store.get_feature_service("gbdt_ranker"),
        entity_rows=[{"user_id": user_id, "item_id": item} for item in candidates],
    ).to_df()
    assert {
        "user_interaction_count",
        "item_interaction_count",
        "profile_item_similarity",
        "profile_pc_0",
        "profile_pc_15",
        "profile_cluster",
        "item_pc_0",
        "item_cluster",
        "student_item_similarity",
        "student_item_score",
        "profile_drift",
        "student_history_len",
        "item_sid_0",
    } <= set(service.columns)
    student = table(pipeline_run, "user_student", latest)
    expected = cosine(
        student.loc[user_id, "student_profile_embedding"], items.loc[candidates[0], "item_text_embedding"]
    )
    assert service.student_item_similarity.iloc[0] == pytest.approx(expected, abs=1e-5)
    assert service.profile_drift.iloc[0] == pytest.approx(student.loc[user_id, "profile_drift"], abs=1e-9)
    # The student's own score of each candidate: its user vector . item vector + item bias, online.
    # (None where the item has no student vector: an item an ID-only variant never saw, or every item when
    # the guard shipped the popularity prior, which serves no item side.)
    item_side = table(pipeline_run, "item_student", latest)
    for k, item in enumerate(candidates):
        vector = item_side.loc[item, "student_item_embedding"]
        if vector is None:
            assert pd.isna(service.student_item_score.iloc[k])
            continue
        logit = float(np.dot(student.loc[user_id, "student_embedding"], vector))
        logit += float(item_side.loc[item, "student_item_bias"])
        assert service.student_item_score.iloc[k] == pytest.approx(logit, rel=1e-5, abs=1e-5)
    if (student.student_variant != "popularity").all():
        assert service.student_item_score.notna().any()
    codes = table(pipeline_run, "item_semantic", latest)
    assert service.item_sid_0.tolist() == codes.loc[candidates, "item_sid_0"].tolist()
    assert service.item_sid_2.tolist() == codes.loc[candidates, "item_sid_2"].tolist()
    semantic = table(pipeline_run, "user_semantic", latest)
    assert service.profile_pc_3.iloc[0] == pytest.approx(semantic.loc[user_id, "profile_pc_3"], abs=1e-6)
    assert service.profile_cluster.iloc[0] == semantic.loc[user_id, "profile_cluster"]
    assert not any(c.endswith("embedding") or c.endswith("transform_id") for c in service.columns)  # numbers only

    two_tower = store.get_online_features(
        features=store.get_feature_service("two_tower"), entity_rows=[{"user_id": user_id, "item_id": candidates[0]}]
    ).to_df()
    assert len(two_tower.profile_embedding.iloc[0]) == 384 and len(two_tower.item_text_embedding.iloc[0]) == 384
    assert len(two_tower.student_embedding.iloc[0]) == 64 and len(two_tower.student_profile_embedding.iloc[0]) == 384
    served = item_side.loc[candidates[0], "student_item_embedding"]
    assert (two_tower.student_item_embedding.iloc[0] is None) == (served is None)


def test_unknown_user_gets_missing_values_not_an_error(materialized):
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(materialized))
    out = store.get_online_features(
        features=store.get_feature_service("gbdt_ranker"), entity_rows=[{"user_id": "nobody", "item_id": "i00001"}]
    ).to_df()
    assert pd.isna(out.profile_item_similarity.iloc[0]) and pd.isna(out.user_interaction_count.iloc[0])


def test_historical_is_point_in_time_and_loses_no_row(materialized, pipeline_run):
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(materialized))
    early, late = pipeline_run["cutoffs"]
    early_users = table(pipeline_run, "user_profile_embeddings", early)
    user_id = early_users.index[0]
    between = early + (late - early) / 2
    # user x item training rows: repeated (user, item, timestamp) keys are real rows
    # (e.g. two impressions) and must all come back; Dask's file store drops them.
    entity_df = pd.DataFrame(
        {
            "user_id": [user_id] * 6,
            "item_id": ["i00001", "i00001", "i00002", "i00003", "i00001", "i00004"],
            "event_timestamp": [
                between,
                between,
                between,
                between,
                late + pd.Timedelta(hours=1),
                early - pd.Timedelta(days=1),
            ],
            "row": range(6),
        }
    )
    out = (
        store.get_historical_features(
            entity_df=entity_df,
            features=[
                "user_profile:profile_embedding",
                "user_stats:user_interaction_count",
                "user_item_similarity:profile_item_similarity",
            ],
        )
        .to_df()
        .set_index("row")
        .sort_index()
    )
    assert len(out) == len(entity_df)
    early_count = table(pipeline_run, "user_stats", early).loc[user_id, "user_interaction_count"]
    late_count = table(pipeline_run, "user_stats", late).loc[user_id, "user_interaction_count"]
    assert out.user_interaction_count.iloc[:4].tolist() == [early_count] * 4
    assert out.user_interaction_count.iloc[4] == late_count
    assert pd.isna(out.user_interaction_count.iloc[5])  # before the first snapshot: nothing known yet
    np.testing.assert_allclose(out.profile_embedding.iloc[0], early_users.loc[user_id, "profile_embedding"], atol=1e-6)
    items = table(pipeline_run, "item_text_embeddings", early)
    expected = cosine(early_users.loc[user_id, "profile_embedding"], items.loc["i00002", "item_text_embedding"])
    assert out.profile_item_similarity.iloc[2] == pytest.approx(expected, abs=1e-5)


def test_similarity_transformation_survives_proto_round_trip(materialized):
    from feast import FeatureStore
    from feast.on_demand_feature_view import OnDemandFeatureView

    odfv = FeatureStore(repo_path=str(materialized)).get_on_demand_feature_view("user_item_similarity")
    rebuilt = OnDemandFeatureView.from_proto(odfv.to_proto())
    inputs = pd.DataFrame(
        {
            "profile_embedding": [[1.0, 0.0], [0.6, 0.8], None],
            "item_text_embedding": [[0.0, 1.0], [0.6, 0.8], [1.0, 0.0]],
        }
    )
    out = rebuilt.feature_transformation.transform(inputs)
    np.testing.assert_allclose(out.profile_item_similarity.to_numpy()[:2], [0.0, 1.0], atol=1e-9)
    assert np.isnan(out.profile_item_similarity.iloc[2])
    scored = rebuilt.feature_transformation.transform(
        inputs.assign(
            student_embedding=[[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]],
            student_item_embedding=[[3.0, 4.0], None, [0.5, 0.5]],
            student_item_bias=[0.25, 1.0, None],
        )
    )
    assert scored.student_item_score.iloc[0] == pytest.approx(11.25)
    assert scored.student_item_score.iloc[1:].isna().all()  # a missing vector or bias is missing, not 0


def test_feast_cli_on_the_shipped_repo_layout(materialized):
    """`feast apply` twice and `materialize-incremental` again are idempotent."""
    from profile_features.pipeline import feast_cli

    feast_cli(materialized, "apply")  # raises with the CLI's output on failure
    feast_cli(materialized, "materialize-incremental", pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S"))
    listed = feast_cli(materialized, "feature-views", "list")
    for name in ("user_profile", "item_text", "user_stats", "item_stats"):
        assert name in listed


def test_reapply_after_materialization_reports_no_changes(materialized):
    """Every view of the shipped repo has materialization intervals here; a re-apply of the same
    definitions (rebuilt in a new process, so their sources are new objects) changes nothing."""
    from profile_features.pipeline import feast_cli

    feast_cli(materialized, "apply")  # the first apply of this session's definitions may add a column
    out = feast_cli(materialized, "apply")
    assert "Updated" not in out and "No changes to registry" in out, out
    assert "No project found" not in out and len(out.splitlines()) <= 3, out  # as quiet as a `feast init` repo


def test_gbdt_ranker_frame_in_the_documented_order(materialized, small_sample):
    from feast import FeatureStore

    from profile_features.feast import service_columns

    store = FeatureStore(repo_path=str(materialized))
    service = store.get_feature_service("gbdt_ranker")
    rows = [{"user_id": small_sample.user_tastes.user_id.iloc[0], "item_id": i} for i in ("i00001", "i00002")]
    online = store.get_online_features(features=service, entity_rows=rows).to_df()
    columns = service_columns(service)
    assert sorted(columns) == sorted(set(online.columns) - {"user_id", "item_id"})  # exactly what Feast returns
    assert columns[:3] == ["user_interaction_count", "user_mean_rating", "user_days_active"]
    assert columns[-2:] == ["profile_drift", "student_history_len"]
    assert online[columns].shape == (2, len(columns))
