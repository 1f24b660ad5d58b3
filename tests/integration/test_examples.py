"""The copyable examples run end to end against a small materialized repo (the session's pipeline run):
historical features -> model -> online features -> scores."""

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

from tests.support.repo import REPO_ROOT

pytestmark = pytest.mark.feast


def load_example(name: str):
    path = REPO_ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def seen_items(pipeline_run, user_id):
    interactions = pd.read_parquet(pipeline_run["data_dir"] / "validated" / "interactions")
    return set(interactions.item_id[interactions.user_id == user_id])


def test_lightgbm_ranker_example(materialized, pipeline_run, capsys):
    from profile_features.feast import service_columns

    example = load_example("rank_with_lightgbm")
    run = example.main(["--repo", str(materialized), "--negatives", "3"])
    out = capsys.readouterr().out
    assert "validation NDCG@10" in out and f"top items for {run.user_id}" in out
    # The model was fitted on the service's documented columns, with the semantic columns as categories.
    from feast import FeatureStore

    assert run.columns == service_columns(FeatureStore(repo_path=str(materialized)).get_feature_service("gbdt_ranker"))
    assert run.model.feature_name_ == run.columns
    assert {"profile_cluster", "item_cluster", "item_sid_0"} <= set(run.categorical)
    assert run.model.best_iteration_ >= 1 and 0 < run.valid_ndcg <= 1
    # Served from the online store: unseen items only, ranked by the model's scores.
    assert len(run.top) == 10 and not set(run.top.item_id) & seen_items(pipeline_run, run.user_id)
    assert run.top.score.is_monotonic_decreasing and run.top.score.nunique() > 1


def test_two_tower_example(materialized, pipeline_run, capsys):
    example = load_example("retrieve_with_two_tower")
    run = example.main(["--repo", str(materialized), "--epochs", "5"])
    out = capsys.readouterr().out
    assert "validation loss" in out and "two towers" in out
    assert run.user_columns[0] == "profile_embedding" and "item_text_embedding" in run.item_columns
    assert 1 <= run.best_epoch <= 5 and np.isfinite(run.valid_loss)
    for top in (run.untrained_top, run.top):
        assert len(top) == 10 and top.score.is_monotonic_decreasing
        assert not set(top.item_id) & seen_items(pipeline_run, run.user_id)
    assert (run.untrained_top.score.abs() <= 1 + 1e-6).all()  # cosines
