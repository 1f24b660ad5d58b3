"""`profile-features materialize`: first loads start at the data (not at now - ttl), counts are
the source's rows, an empty first load fails loudly, later runs continue incrementally."""

import pandas as pd
import pytest
import yaml

from profile_features.cli import main
from profile_features.pipeline import feast_cli
from tests.conftest import make_repo

pytestmark = pytest.mark.feast


def short_ttl_repo(tmp_path, data_dir):
    """The shipped repo with a 1-day ttl: the session's snapshots are older than now - ttl, as a
    user's history often is (`materialize-incremental` then starts after all of it)."""
    repo = make_repo(tmp_path, data_dir)
    settings = yaml.safe_load((repo / "profile_features.yaml").read_text())
    settings["ttl_days"] = 1
    (repo / "profile_features.yaml").write_text(yaml.safe_dump(settings))
    feast_cli(repo, "apply")
    return repo


def read_profile(repo, users):
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    rows = [{"user_id": user} for user in users]
    return store.get_online_features(features=["user_profile:profile_embedding"], entity_rows=rows).to_df()


def table_rows(data_dir, table, before):
    frame = pd.read_parquet(data_dir / table, columns=["event_timestamp"])
    stamps = pd.to_datetime(frame.event_timestamp, utc=True)
    return int((stamps < before).sum())


def test_first_load_starts_at_the_data_and_counts_its_rows(tmp_path, pipeline_run, small_sample, capsys):
    users = small_sample.user_tastes.user_id[:3].tolist()
    old_data = pipeline_run["cutoffs"][-1] + pd.Timedelta(days=3)  # a day's ttl ends before "now" here
    plain = short_ttl_repo(tmp_path / "plain", pipeline_run["data_dir"])
    feast_cli(plain, "materialize-incremental", f"{old_data:%Y-%m-%dT%H:%M:%S}")
    assert read_profile(plain, users).profile_embedding.isna().all()  # Feast's pitfall: loads nothing, exit 0

    repo = short_ttl_repo(tmp_path / "ours", pipeline_run["data_dir"])
    end = f"{old_data:%Y-%m-%dT%H:%M:%S}"
    assert main(["materialize", "--repo", str(repo), "--end", end]) == 0
    printed = capsys.readouterr().out
    expected = table_rows(pipeline_run["data_dir"], "user_profile_embeddings", old_data)
    assert expected > 0 and "user_profile: first load" in printed and f"{expected} source rows" in printed
    assert read_profile(repo, users).profile_embedding.notna().all()

    # A second run continues from the first one's end: nothing new, no error.
    assert main(["materialize", "--repo", str(repo), "--end", end]) == 0
    assert "user_profile: incremental" in capsys.readouterr().out


def test_empty_first_load_exits_1_and_names_the_view(tmp_path, pipeline_run, capsys):
    repo = short_ttl_repo(tmp_path, pipeline_run["data_dir"])
    before_any = pipeline_run["cutoffs"][0] - pd.Timedelta(days=30)
    assert main(["materialize", "--repo", str(repo), "--end", f"{before_any:%Y-%m-%dT%H:%M:%S}"]) == 1
    err = capsys.readouterr().err
    assert "first materialization loaded no rows" in err and "user_profile (source" in err
    assert "user_profile_embeddings" in err


def test_materialize_on_a_folder_without_a_repo_is_a_clear_error(tmp_path, capsys):
    assert main(["materialize", "--repo", str(tmp_path / "nowhere")]) == 2
    assert "has no feature_store.yaml" in capsys.readouterr().err


def test_shipped_repo_feast_calls_print_no_warning(materialized):
    import subprocess
    import sys
    from pathlib import Path

    feast = Path(sys.executable).with_name("feast")
    result = subprocess.run(
        [str(feast), "-c", str(materialized), "feature-views", "list"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "user_profile" in result.stdout
    assert "WARNING" not in result.stderr, result.stderr
