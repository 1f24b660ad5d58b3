"""The fast scoring path against the on-demand view, on the materialized test repo."""

import numpy as np
import pandas as pd
import pytest

from profile_features.serving import SemanticScorer

pytestmark = pytest.mark.feast


@pytest.fixture(scope="module")
def store(materialized):
    from feast import FeatureStore

    return FeatureStore(repo_path=str(materialized))


def test_fast_path_equals_on_demand_view(store, small_sample):
    catalogue = small_sample.items.item_id.tolist()
    scorer = SemanticScorer(store, catalogue)
    user_id = small_sample.user_tastes.user_id.iloc[2]
    candidates = catalogue[5:25] + ["not-in-catalogue"]
    fast = scorer.score(user_id, candidates)
    odfv = store.get_online_features(
        features=["user_item_similarity:profile_item_similarity"],
        entity_rows=[{"user_id": user_id, "item_id": c} for c in candidates],
    ).to_df()
    assert fast.item_id.tolist() == candidates
    np.testing.assert_allclose(
        fast.profile_item_similarity.to_numpy()[:-1], odfv.profile_item_similarity.to_numpy(dtype=float)[:-1], atol=1e-5
    )
    assert np.isnan(fast.profile_item_similarity.iloc[-1])
    assert pd.isna(odfv.profile_item_similarity.iloc[-1])


def test_fast_path_scores_the_student_vector_too(store, small_sample):
    catalogue = small_sample.items.item_id.tolist()
    scorer = SemanticScorer(
        store,
        catalogue,
        user_vectors=["user_profile:profile_embedding", "user_student:student_profile_embedding"],
        similarity_names=["profile_item_similarity", "student_item_similarity"],
    )
    user_id = small_sample.user_tastes.user_id.iloc[4]
    fast = scorer.score(user_id, catalogue[:30])
    odfv = store.get_online_features(
        features=["user_item_similarity:profile_item_similarity", "user_item_similarity:student_item_similarity"],
        entity_rows=[{"user_id": user_id, "item_id": c} for c in catalogue[:30]],
    ).to_df()
    for column in ("profile_item_similarity", "student_item_similarity"):
        np.testing.assert_allclose(fast[column].to_numpy(), odfv[column].to_numpy(dtype=float), atol=1e-5)


def test_unknown_user_scores_nan(store, small_sample):
    scorer = SemanticScorer(store, small_sample.items.item_id.tolist())
    assert scorer.score("nobody", small_sample.items.item_id.tolist()[:3]).profile_item_similarity.isna().all()


def test_ranking_features_merge_scalars_and_similarity(store, small_sample):
    scorer = SemanticScorer(store, small_sample.items.item_id.tolist())
    user_id = small_sample.user_tastes.user_id.iloc[0]
    frame = scorer.ranking_features(
        user_id,
        small_sample.items.item_id.tolist()[:10],
        ["item_stats:item_interaction_count", "item_semantic:item_pc_0"],
    )
    assert {"item_interaction_count", "item_pc_0", "profile_item_similarity"} <= set(frame.columns)
    assert len(frame) == 10 and frame.profile_item_similarity.notna().all()


def test_item_matrix_reloads_after_rematerialization(store, materialized, small_sample):
    from profile_features.pipeline import feast_cli

    scorer = SemanticScorer(store, small_sample.items.item_id.tolist(), check_every_s=0)
    first = scorer.items()
    assert scorer.items() is first  # unchanged version: no reload
    later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    feast_cli(materialized, "materialize-incremental", later)
    second = scorer.items()
    assert second is not first and second.version != first.version
    np.testing.assert_allclose(second.vectors, first.vectors, atol=1e-7)


def _write_item_vectors(store, vectors: dict[str, list[float]]) -> None:
    """Rows for item ids of this test only, written into the real online store."""
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame(
        {
            "item_id": list(vectors),
            "item_text_embedding": list(vectors.values()),
            "item_text": "x",
            "text_hash": "h",
            "encoder": "e",
            "event_timestamp": now,
        }
    )
    store.write_to_online_store("item_text", frame)


def test_one_malformed_item_vector_scores_nan_and_is_counted_not_every_item(store, small_sample):
    catalogue = small_sample.items.item_id.tolist()
    width = len(
        store.get_online_features(["item_text:item_text_embedding"], [{"item_id": catalogue[0]}]).to_dict()[
            "item_text_embedding"
        ][0]
    )
    _write_item_vectors(store, {"bad-short": [1.0, 2.0, 3.0], "bad-nan": [float("nan")] * width})
    scorer = SemanticScorer(store, ["bad-short", "bad-nan"] + catalogue[:20])  # the malformed rows come first
    user_id = small_sample.user_tastes.user_id.iloc[2]
    scores = scorer.score(user_id, ["bad-short", "bad-nan"] + catalogue[:20]).profile_item_similarity
    assert scores.iloc[:2].isna().all() and scores.iloc[2:].notna().all()
    assert scorer.items().vectors.shape[1] == width and set(scorer.items().malformed) == {"bad-short", "bad-nan"}
    reference = SemanticScorer(store, catalogue[:20]).score(user_id, catalogue[:20]).profile_item_similarity
    np.testing.assert_allclose(scores.iloc[2:].to_numpy(), reference.to_numpy(), atol=1e-6)


def test_an_empty_candidate_list_gives_an_empty_result(store, small_sample):
    scorer = SemanticScorer(store, small_sample.items.item_id.tolist())
    user_id = small_sample.user_tastes.user_id.iloc[2]
    empty = scorer.score(user_id, [])
    assert len(empty) == 0 and list(empty.columns) == ["item_id", "profile_item_similarity"]
    features = scorer.ranking_features(user_id, [], ["item_stats:item_interaction_count"])
    assert len(features) == 0 and "profile_item_similarity" in features.columns


def _write_user_vector(store, source_user: str, user_id: str, scale: float) -> None:
    """A copy of `source_user`'s profile row under `user_id`, its vector scaled by `scale`."""
    view = store.get_feature_view("user_profile")
    names = [f.name for f in view.features]
    row = store.get_online_features([f"user_profile:{n}" for n in names], [{"user_id": source_user}]).to_dict()
    frame = pd.DataFrame({"user_id": [user_id], **{n: [row[n][0]] for n in names}})
    frame["profile_embedding"] = [[float(x) * scale for x in row["profile_embedding"][0]]]
    frame["event_timestamp"] = pd.Timestamp.now(tz="UTC")
    store.write_to_online_store("user_profile", frame)


def test_vectors_at_the_edges_of_float32_score_alike_in_both_paths(store, small_sample):
    catalogue = small_sample.items.item_id.tolist()
    real = store.get_online_features(["item_text:item_text_embedding"], [{"item_id": i} for i in catalogue[:2]])
    first, second = real.to_dict()["item_text_embedding"]
    width = len(first)
    # Squares of 1e30 overflow float32, of 1e-30 underflow it; 1e39 is beyond float32 itself.
    edges = {
        "edge-huge": [x * 1e30 for x in first],
        "edge-tiny": [x * 1e-30 for x in second],
        "edge-beyond": [1e39] * width,
    }
    _write_item_vectors(store, edges)
    user = small_sample.user_tastes.user_id.iloc[2]
    _write_user_vector(store, user, "edge-user", 1e25)
    candidates = list(edges) + catalogue[:5]
    scorer = SemanticScorer(store, candidates)
    for user_id in (user, "edge-user"):
        fast = scorer.score(user_id, candidates).profile_item_similarity.to_numpy()
        odfv = store.get_online_features(
            features=["user_item_similarity:profile_item_similarity"],
            entity_rows=[{"user_id": user_id, "item_id": c} for c in candidates],
        ).to_df()
        slow = odfv.profile_item_similarity.to_numpy(dtype=float)
        assert np.isfinite(fast[:2]).all() and np.isfinite(fast[3:]).all(), (user_id, fast)
        assert np.isnan(fast[2]) and np.isnan(slow[2])  # malformed in both
        np.testing.assert_allclose(fast, slow, atol=1e-5)
    reference = scorer.score(user, candidates).profile_item_similarity.to_numpy()
    np.testing.assert_allclose(scorer.score("edge-user", candidates).profile_item_similarity, reference, atol=1e-5)
