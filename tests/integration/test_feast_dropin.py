"""The plugin dropped into a repo made by `feast init` (Feast's own template), with the README's two
blocks: `feast apply`, `materialize` and online reads serve the template's features and ours together."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.support.repo import REPO_ROOT, local_table

pytestmark = [pytest.mark.feast, pytest.mark.slow]


def readme_blocks(section: str) -> dict[str, str]:
    """The fenced code blocks of a README section, by language."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"### {section}\n", 1)[1].split("\n### ", 1)[0]
    return {lang: code for lang, code in re.findall(r"```(\w+)\n(.*?)```", body, flags=re.S)}


@pytest.fixture(scope="module")
def dropped_in(module_tmp, pipeline_run):
    from profile_features.pipeline import feast_cli

    root = module_tmp / "dropin"

    root.mkdir()
    feast = Path(sys.executable).with_name("feast")
    env = {**os.environ, "FEAST_USAGE": "False"}
    subprocess.run([str(feast), "init", "shop"], cwd=root, env=env, check=True, capture_output=True)
    repo = root / "shop" / "feature_repo"
    blocks = readme_blocks("In an existing Feast repo")
    (repo / "profile_features_defs.py").write_text(blocks["python"])
    settings = yaml.safe_load(blocks["yaml"])
    settings["data_dir"] = str(pipeline_run["data_dir"])  # the README's bucket, here the session's tables
    (repo / "profile_features.yaml").write_text(yaml.safe_dump(settings))
    feast_cli(repo, "apply")
    # From before our oldest snapshot (materialize-incremental would start at now - ttl) to now.
    start = min(pipeline_run["cutoffs"]) - timedelta(days=1)
    end = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1)
    feast_cli(repo, "materialize", f"{start:%Y-%m-%dT%H:%M:%S}", f"{end:%Y-%m-%dT%H:%M:%S}")
    return repo, settings


def test_template_and_plugin_views_are_applied_side_by_side(dropped_in):
    from profile_features.pipeline import feast_cli

    repo, _ = dropped_in
    views = feast_cli(repo, "feature-views", "list")
    assert "driver_hourly_stats" in views and "pf_user_profile" in views and "pf_item_semantic" in views
    assert "pf_user_stats" not in views and " user_stats" not in views  # stats: false
    services = feast_cli(repo, "feature-services", "list")
    assert "driver_activity_v1" in services and "pf_gbdt_ranker" in services


def test_online_reads_serve_both(dropped_in, pipeline_run):
    from feast import FeatureStore

    repo, _ = dropped_in
    store = FeatureStore(repo_path=str(repo))
    cutoff = max(pipeline_run["cutoffs"])
    profiles = pd.read_parquet(
        local_table(pipeline_run["config"], "user_profile_embeddings") / f"run_date={cutoff:%Y-%m-%d}"
    )
    user = profiles.user_id.iloc[0]
    out = store.get_online_features(
        features=[
            "driver_hourly_stats:conv_rate",
            "pf_user_profile:profile_embedding",
            "pf_user_semantic:profile_cluster",
        ],
        entity_rows=[{"driver_id": 1001, "user_id": user}],
    ).to_df()
    assert out.conv_rate.notna().all()
    np.testing.assert_allclose(out.profile_embedding.iloc[0], profiles.profile_embedding.iloc[0], atol=1e-6)
    semantic = pd.read_parquet(local_table(pipeline_run["config"], "user_semantic") / f"run_date={cutoff:%Y-%m-%d}")
    assert out.profile_cluster.iloc[0] == semantic.set_index("user_id").loc[user, "profile_cluster"]
    items = pd.read_parquet(local_table(pipeline_run["config"], "item_semantic") / f"run_date={cutoff:%Y-%m-%d}")
    ranker = store.get_online_features(
        features=store.get_feature_service("pf_gbdt_ranker"),
        entity_rows=[{"user_id": user, "item_id": items.item_id.iloc[0]}],
    ).to_df()
    # PCA width from the saved transform; similarity from the on-demand view; no stats columns.
    k = sum(c.startswith("item_pc_") for c in items.columns)
    assert k > 0 and {f"item_pc_{i}" for i in range(k)} == {c for c in ranker.columns if c.startswith("item_pc_")}
    assert ranker.profile_item_similarity.between(-1, 1).all() and "user_interaction_count" not in ranker


def test_our_materialize_checks_the_templates_views_too(dropped_in, capsys):
    """`profile-features materialize` in the `feast init` repo: the template's int-keyed driver views and
    our prefixed, remapped ones are continued and read back (their online rows are the sources' newest)."""
    from profile_features.cli import main

    repo, _ = dropped_in
    assert main(["materialize", "--repo", str(repo)]) == 0
    printed = capsys.readouterr().out
    for view in ("driver_hourly_stats", "pf_user_profile", "pf_item_semantic"):
        line = next(line for line in printed.splitlines() if line.startswith(f"{view}: "))
        assert "incremental" in line and "online store holds the newest row of all" in line, line
