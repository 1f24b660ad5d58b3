"""build_definitions from config, without applying: names, join keys, sources, services."""

import time

import numpy as np
import pytest
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
    definitions = build_definitions(FeastSettings(data_dir=str(tmp_path), semantic_components=16, semantic_id_levels=3))
    gbdt = {f.name for p in definitions.gbdt_ranker.feature_view_projections for f in p.features}
    assert {
        "profile_item_similarity",
        "student_item_similarity",
        "student_item_score",
        "profile_drift",
        "profile_cluster",
        "item_pc_15",
        "item_sid_0",
        "item_sid_2",
    } <= gbdt
    assert not any(name.endswith(("embedding", "transform_id", "text", "fallback")) for name in gbdt)
    two_tower = {f.name for p in definitions.two_tower.feature_view_projections for f in p.features}
    assert two_tower == {
        "profile_embedding",
        "item_text_embedding",
        "student_embedding",
        "student_profile_embedding",
        "student_item_embedding",
    }


def test_student_view_is_optional(tmp_path):
    definitions = build_definitions(FeastSettings(data_dir=str(tmp_path), student=False, semantic_components=2))
    assert "user_student" not in definitions.objects() and "item_student" not in definitions.objects()
    assert [f.name for f in definitions.user_item_similarity.features] == ["profile_item_similarity"]


def test_spark_sources(tmp_path):
    settings = FeastSettings(
        data_dir=str(tmp_path),
        source="spark",
        spark_tables={"user_stats": "features.user_stats"},
        semantic_components=2,
    )
    definitions = build_definitions(settings)
    assert isinstance(definitions.user_stats.batch_source, SparkSource)
    assert definitions.user_stats.batch_source.table == "features.user_stats"
    profile_source = definitions.user_profile.batch_source
    assert profile_source.path == str(tmp_path / "user_profile_embeddings")
    assert profile_source.date_partition_column == "run_date"


def save_fitted(directory, kind: str, components: int, seed: int = 0):
    from profile_features.semantic import fit_transform_model, save_transform

    vectors = np.random.default_rng(seed).normal(size=(40, 8)).astype(np.float32)
    transform = fit_transform_model(list(vectors), kind, components, 3, "enc", "t/run_date=x", seed)
    return save_transform(transform, directory)


def test_components_are_read_from_the_newest_saved_transforms(tmp_path):
    with pytest.raises(ValueError, match="no saved semantic transform.*semantic columns job"):
        build_definitions(FeastSettings(data_dir=str(tmp_path)))
    transforms = tmp_path / "transforms"
    save_fitted(transforms, "profile", 3)
    save_fitted(transforms, "item", 3)
    definitions = build_definitions(FeastSettings(data_dir=str(tmp_path)))
    assert [f.name for f in definitions.item_semantic.features][:4] == [
        "item_pc_0",
        "item_pc_1",
        "item_pc_2",
        "item_cluster",
    ]
    time.sleep(0.01)  # a later fit with other settings wins, for both kinds together
    save_fitted(transforms, "profile", 5, seed=1)
    with pytest.raises(ValueError, match="differ in components"):
        build_definitions(FeastSettings(data_dir=str(tmp_path)))
    save_fitted(transforms, "item", 5, seed=1)
    assert len(build_definitions(FeastSettings(data_dir=str(tmp_path))).user_semantic.features) == 5 + 2


def test_semantic_id_levels_are_read_from_the_newest_saved_transform(tmp_path):
    from profile_features.semantic_ids import fit_semantic_ids, save_sid_transform

    settings = FeastSettings(data_dir=str(tmp_path), semantic_components=2)
    assert not any(f.name.startswith("item_sid") for f in build_definitions(settings).item_semantic.features)
    vectors = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    save_sid_transform(fit_semantic_ids(list(vectors), 2, 4, "enc", "t"), tmp_path / "transforms")
    names = [f.name for f in build_definitions(settings).item_semantic.features]
    assert names[-3:] == ["item_sid_0", "item_sid_1", "item_sid_transform_id"]
    assert {f.name: f.dtype.name for f in build_definitions(settings).item_semantic.features}["item_sid_1"] == "INT64"


def test_prefix_and_groups_keep_out_of_the_repos_names(tmp_path):
    settings = FeastSettings(data_dir=str(tmp_path), name_prefix="pf_", stats=False, semantic_components=2)
    definitions = build_definitions(settings)
    objects = definitions.objects()
    assert "user_stats" not in objects and "pf_user_stats" not in objects and definitions.user_stats is None
    names = {getattr(obj, "name") for key, obj in objects.items() if key not in ("pf_user", "pf_item")}
    assert names == {
        "pf_user_profile",
        "pf_item_text",
        "pf_user_semantic",
        "pf_item_semantic",
        "pf_user_student",
        "pf_item_student",
        "pf_user_item_similarity",
        "pf_gbdt_ranker",
        "pf_two_tower",
    }
    assert set(objects) == names | {"pf_user", "pf_item"}  # module names = Feast names: nothing overwritten
    assert definitions.user_profile.batch_source.name == "pf_user_profile_embeddings_source"
    gbdt_views = {p.name for p in definitions.gbdt_ranker.feature_view_projections}
    assert not {"user_stats", "item_stats"} & gbdt_views and "pf_user_semantic" in gbdt_views


def test_the_repos_own_entities(tmp_path):
    from feast import Entity, ValueType

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    definitions = build_definitions(FeastSettings(data_dir=str(tmp_path), semantic_components=2), user_entity=customer)
    assert definitions.user is customer and "user" not in definitions.objects() and "item" in definitions.objects()
    assert definitions.user_profile.entities == ["customer"]
    assert definitions.user_profile.batch_source.field_mapping == {"user_id": "customer_id"}
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    with pytest.raises(ValueError, match="'driver'.*INT64.*string ids"):
        build_definitions(FeastSettings(data_dir=str(tmp_path), semantic_components=2), user_entity=driver)


GBDT_ORDER = [
    "user_interaction_count",
    "user_mean_rating",
    "user_days_active",
    "item_interaction_count",
    "item_mean_rating",
    "profile_pc_0",
    "profile_pc_1",
    "profile_cluster",
    "item_pc_0",
    "item_pc_1",
    "item_cluster",
    "item_sid_0",
    "profile_item_similarity",
    "student_item_similarity",
    "student_item_score",
    "profile_drift",
    "student_history_len",
]


def test_gbdt_ranker_has_the_documented_column_order(tmp_path):
    from profile_features.feast import service_columns

    settings = FeastSettings(data_dir=str(tmp_path), semantic_components=2, semantic_id_levels=1)
    assert service_columns(build_definitions(settings).gbdt_ranker) == GBDT_ORDER
    no_student = build_definitions(settings.model_copy(update={"student": False, "stats": False}))
    assert service_columns(no_student.gbdt_ranker) == [
        c for c in GBDT_ORDER if not c.startswith(("user_", "item_i", "item_m", "student_", "profile_drift"))
    ]
    assert service_columns(build_definitions(settings).two_tower, full_feature_names=True)[:2] == [
        "user_profile__profile_embedding",
        "item_text__item_text_embedding",
    ]


def test_column_order_does_not_depend_on_the_process(tmp_path):
    """Feast's own online frames follow set order, which string hashing changes per process; ours must not."""
    import os
    import subprocess
    import sys

    code = (
        "from profile_features.feast import FeastSettings, build_definitions, service_columns\n"
        f"settings = FeastSettings(data_dir={str(tmp_path)!r}, semantic_components=2, semantic_id_levels=1)\n"
        "d = build_definitions(settings)\n"
        "print(','.join(service_columns(d.gbdt_ranker)))"
    )
    orders = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert orders == {",".join(GBDT_ORDER)}


def test_sources_serialise_the_same_whenever_they_are_built(tmp_path):
    """`feast apply` compares each view's spec, source meta included: sources built a second later (and
    stamped by the registry on apply) must give the same proto, or every re-apply lists every view."""
    from datetime import datetime, timezone

    settings = FeastSettings(data_dir=str(tmp_path), semantic_components=2)
    first = build_definitions(settings)
    time.sleep(1.1)
    second = build_definitions(settings)
    second.user_profile.batch_source.last_updated_timestamp = datetime.now(timezone.utc)  # what apply does
    assert first.user_profile.to_proto().spec == second.user_profile.to_proto().spec
    assert second.user_profile.batch_source.to_proto().meta.HasField("created_timestamp")
    spark = build_definitions(settings.model_copy(update={"source": "spark"}))
    assert (
        spark.item_stats.batch_source.to_proto()
        == build_definitions(settings.model_copy(update={"source": "spark"})).item_stats.batch_source.to_proto()
    )
