"""The two-tower evaluation: one real run on a small pipeline (Spark + Feast) whose hidden tastes the
semantic inputs must find (metrics and encoding by hand: tests/unit/test_two_tower.py)."""

import numpy as np
import pandas as pd
import pytest

from profile_features.catalogue import Snapshot, table_named
from profile_features.evaluation.report import slice_rows

COLUMNS = ["model", "variant", "seed", "slice", "metric", "value", "users"]


@pytest.fixture(scope="module")
def two_tower_run(module_tmp, spark):
    """A small sample through the pipeline at the 60% and 80% cutoffs, applied to its own
    Feast repo, then `evaluate_two_tower` with one seed and a cold slice."""
    from profile_features.config import JobConfig, SampleConfig
    from profile_features.datasets import generate_sample
    from profile_features.evaluation.rankers.two_tower import evaluate_two_tower
    from profile_features.evaluation.split import validation_users
    from profile_features.pipeline import feast_cli, run_pipeline, snapshot_cutoffs, write_inputs
    from tests.support.repo import make_repo

    root = module_tmp / "two_tower"

    root.mkdir()
    sample = generate_sample(SampleConfig(users=200, items=150, mean_interactions=25, seed=5))
    interactions = sample.interactions
    config = JobConfig(
        data_dir=str(root / "data"),
        inputs=write_inputs(interactions, sample.items, root / "raw"),
        student={"overrides": ["train.epochs=2", "body.max_len=20", "train.num_threads=1"]},
    )
    cutoffs = snapshot_cutoffs(interactions.timestamp, [0.6, 0.8])
    run_pipeline(spark, config, cutoffs)
    repo = make_repo(root, config.data_dir)
    feast_cli(repo, "apply")
    end = interactions.timestamp.max() + pd.Timedelta(seconds=1)
    test_users = sorted(interactions[interactions.timestamp >= pd.Timestamp(cutoffs[1])].user_id.unique())
    cold = test_users[:5] + ["not-a-test-user"]
    valid_users = validation_users(interactions, cutoffs[0], cutoffs[1], 0.2)
    results = evaluate_two_tower(
        repo,
        interactions,
        cutoffs[0],
        cutoffs[1],
        end,
        seeds=[0],
        slices={"all": test_users, "cold": cold},
        epochs=30,
        valid_users=valid_users,
    )
    return {
        "repo": repo,
        "config": config,
        "cutoffs": cutoffs,
        "end": end,
        "interactions": interactions,
        "results": results.test,
        "per_user": slice_rows(results.test_per_user, "two_tower", "recall@50", {"all": test_users, "cold": cold}),
        "valid": results.valid,
        "valid_users": valid_users,
        "cold": cold,
        "n_items": len(sample.items),
    }


def _targets(interactions, cutoff, end, users=None) -> dict[str, set]:
    """Per user, held-out items in [cutoff, end) the user had not had before the cutoff."""
    before = interactions[interactions.timestamp < pd.Timestamp(cutoff)].groupby("user_id").item_id.agg(set)
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(cutoff)) & (interactions.timestamp < pd.Timestamp(end))
    ]
    out = {u: set(g.item_id) - before.get(u, set()) for u, g in window.groupby("user_id")}
    return {u: t for u, t in out.items() if t and (users is None or u in users)}


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_evaluate_two_tower_frame_and_the_semantic_inputs_beat_random(two_tower_run):
    results, interactions = two_tower_run["results"], two_tower_run["interactions"]
    _, test_cutoff = two_tower_run["cutoffs"]
    assert list(results.columns) == COLUMNS
    assert set(results.model) == {"two_tower"}
    assert set(results.variant) == {"without semantic inputs", "with semantic inputs"}
    assert set(results.metric) == {"ndcg@10", "recall@10", "recall@50", "hr@10", "mrr"}
    targets = _targets(interactions, test_cutoff, two_tower_run["end"])
    cold_targets = _targets(interactions, test_cutoff, two_tower_run["end"], set(two_tower_run["cold"]))
    assert set(results[results.slice == "all"].users) == {len(targets)}
    assert set(results[results.slice == "cold"].users) == {len(cold_targets)} and 0 < len(cold_targets) <= 5

    # A random ranking's expected Recall@10 is 10 / (items left) per user (targets are never seen items).
    seen = interactions[interactions.timestamp < pd.Timestamp(test_cutoff)].groupby("user_id").item_id.nunique()
    random_recall = np.mean([min(1.0, 10 / (two_tower_run["n_items"] - seen.get(u, 0))) for u in targets])
    value = results[(results.slice == "all")].set_index(["variant", "metric"]).value
    assert value["with semantic inputs", "recall@10"] > 2 * random_recall
    # The hidden tastes are written into the profiles: the semantic inputs must add to ID embeddings.
    assert value["with semantic inputs", "ndcg@10"] > 1.2 * value["without semantic inputs", "ndcg@10"]


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_validation_values_choose_the_semantic_inputs_on_data_where_they_help(two_tower_run):
    """Per validation user and variant, the selection metric at the kept epoch; on this data (tastes written
    into the profiles) the recommendation is the semantic inputs, and the check on test passes."""
    from profile_features.evaluation.report import acceptance_checks
    from profile_features.evaluation.selection import recommend

    valid = two_tower_run["valid"]
    assert list(valid.columns) == ["variant", "seed", "user_id", "value"]
    assert set(valid.user_id) <= set(two_tower_run["valid_users"]) and valid.value.between(0, 1).all()
    assert valid.groupby("variant").user_id.nunique().nunique() == 1  # both variants on the same users
    counts = {"without semantic inputs": 0, "with semantic inputs": 1}
    choice = recommend(valid, counts, baseline="without semantic inputs", min_users=1)
    means = valid.groupby("variant").value.mean()
    assert means["with semantic inputs"] > means["without semantic inputs"]  # the known answer, on validation too
    assert choice.variant == ("with semantic inputs" if choice.helps else "without semantic inputs")
    assert [c.variant for c in choice.candidates] == ["with semantic inputs"]
    checks = acceptance_checks(two_tower_run["per_user"], None, min_users=1, tower="with semantic inputs")
    assert {c["slice"] for c in checks} == {"all", "cold"} and all(c["metric"] == "recall@50" for c in checks)
    assert checks[0]["slice"] == "all" and checks[0]["difference"] > 0
    assert checks[0]["passed"] == (checks[0]["outcome"] == "passed") and checks[0]["low"] < checks[0]["difference"]
    per_user = two_tower_run["per_user"]
    means = per_user[per_user.slice == "all"].groupby("variant").value.mean()
    table = two_tower_run["results"].query("slice == 'all' and metric == 'recall@50'").set_index("variant").value
    assert means.to_dict() == pytest.approx(table.to_dict())  # per-user values average to the reported means


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_online_vectors_are_the_test_snapshot_and_training_vectors_the_first(two_tower_run):
    from feast import FeatureStore

    from profile_features.evaluation.rankers.two_tower import _catalogue, online_frame, service_features, training_set

    repo, config, interactions = two_tower_run["repo"], two_tower_run["config"], two_tower_run["interactions"]
    train_cutoff, test_cutoff = two_tower_run["cutoffs"]
    store = FeatureStore(repo_path=str(repo))
    refs = service_features(store)
    assert set(refs) == {"user_id", "item_id"} and "item_text:item_text_embedding" in refs["item_id"]

    def offline(table, cutoff):
        frame = pd.read_parquet(Snapshot(config.data_dir, cutoff).path(table_named(table)))
        return frame.set_index(frame.columns[0])

    student = offline("user_student", test_cutoff)
    user = student.index[0]
    online = online_frame(store, "user_id", [user], refs["user_id"], test_cutoff)  # materialized by the evaluation
    np.testing.assert_allclose(online.loc[user, "student_embedding"], student.loc[user, "student_embedding"], atol=1e-6)
    items = offline("item_text_embeddings", test_cutoff)
    online_items = online_frame(store, "item_id", list(items.index[:3]), refs["item_id"], test_cutoff)
    for item in items.index[:3]:
        np.testing.assert_allclose(
            online_items.loc[item, "item_text_embedding"], items.loc[item, "item_text_embedding"], atol=1e-6
        )
    with pytest.raises(RuntimeError, match="newer than"):  # the store serves the test snapshot: too new for training
        online_frame(store, "user_id", [user], refs["user_id"], train_cutoff)

    # Training rows carry the first snapshot's vectors (point-in-time), not the online ones.
    catalogue = _catalogue(repo, interactions, test_cutoff)
    train, user_encoder, _ = training_set(store, repo, interactions, catalogue, train_cutoff, test_cutoff)
    profiles = offline("user_profile_embeddings", train_cutoff)[["profile_embedding"]]
    first = offline("user_student", train_cutoff).join(profiles)
    expected = user_encoder.transform(first.reindex(train.inputs.users))
    np.testing.assert_allclose(train.inputs.user_dense, expected, atol=1e-5)
    assert len(train.row_user) == len(_window_pairs(interactions, train_cutoff, test_cutoff))


def _window_pairs(interactions, start, end) -> pd.DataFrame:
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(start)) & (interactions.timestamp < pd.Timestamp(end))
    ]
    return window[["user_id", "item_id"]].drop_duplicates()
