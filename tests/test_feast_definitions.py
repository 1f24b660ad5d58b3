"""build_definitions from config, without applying: names, join keys, sources, services."""

from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

from profile_features.feast import FeastSettings, build_definitions


def test_custom_entities_map_onto_our_columns(tmp_path):
    settings = FeastSettings(
        data_dir=str(tmp_path),
        user={"name": "customer", "join_key": "customer_id"},
        item={"name": "product", "join_key": "sku"},
        ttl_days=7,
        semantic_components=4,
    )
    definitions = build_definitions(settings)
    assert definitions.user.name == "customer" and definitions.user.join_key == "customer_id"
    assert definitions.item_text.entities == ["product"]
    assert definitions.user_profile.batch_source.field_mapping == {"user_id": "customer_id"}
    assert definitions.item_stats.batch_source.field_mapping == {"item_id": "sku"}
    assert definitions.user_profile.ttl.days == 7
    assert [f.name for f in definitions.user_semantic.features][:5] == [
        "profile_pc_0",
        "profile_pc_1",
        "profile_pc_2",
        "profile_pc_3",
        "profile_cluster",
    ]
    assert definitions.user_profile.batch_source.path == str(tmp_path / "user_profile_embeddings")


def test_services_hold_numbers_for_gbdt_and_vectors_for_two_tower(tmp_path):
    definitions = build_definitions(FeastSettings(data_dir=str(tmp_path)))
    gbdt = {f.name for p in definitions.gbdt_ranker.feature_view_projections for f in p.features}
    assert {
        "profile_item_similarity",
        "student_item_similarity",
        "profile_drift",
        "profile_cluster",
        "item_pc_15",
    } <= gbdt
    assert not any(name.endswith(("embedding", "transform_id", "text", "fallback")) for name in gbdt)
    two_tower = {f.name for p in definitions.two_tower.feature_view_projections for f in p.features}
    assert two_tower == {"profile_embedding", "item_text_embedding", "student_embedding", "student_profile_embedding"}


def test_student_view_is_optional(tmp_path):
    definitions = build_definitions(FeastSettings(data_dir=str(tmp_path), student=False))
    assert "user_student" not in definitions.objects()
    assert [f.name for f in definitions.user_item_similarity.features] == ["profile_item_similarity"]


def test_spark_sources(tmp_path):
    settings = FeastSettings(data_dir=str(tmp_path), source="spark", spark_tables={"user_stats": "features.user_stats"})
    definitions = build_definitions(settings)
    assert isinstance(definitions.user_stats.batch_source, SparkSource)
    assert definitions.user_stats.batch_source.table == "features.user_stats"
    profile_source = definitions.user_profile.batch_source
    assert profile_source.path == str(tmp_path / "user_profile_embeddings")
    assert profile_source.date_partition_column == "run_date"
