"""`profile-features materialize`: first loads start at the data (not at now - ttl), counts are
the source's rows, an empty first load fails loudly, later runs continue incrementally."""

import pandas as pd
import pytest
import yaml

from profile_features.cli import main
from profile_features.pipeline import feast_cli
from tests.support.repo import make_repo

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
    assert "Materializing" not in printed and "\x1b[" not in printed  # Feast's coloured progress stays off stdout
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


VIEW_TABLES = (
    "user_profile_embeddings",
    "item_text_embeddings",
    "user_stats",
    "item_stats",
    "user_semantic",
    "item_semantic",
    "user_student",
    "item_student",
)


def other_data(data_dir, target, shift=pd.Timedelta(days=-400)):
    """The pipeline's view tables as another data set: new user/item ids and event times `shift` earlier
    (inside the window a demo's registry already covers), in the same Arrow types; transforms copied."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for table in VIEW_TABLES:
        for part in (data_dir / table).rglob("*.parquet"):
            data = pq.read_table(part, partitioning=None)
            for key in ("user_id", "item_id"):
                if key in data.column_names:
                    index = data.column_names.index(key)
                    data = data.set_column(index, key, pc.binary_join_element_wise("new-", data[key], ""))
            index = data.column_names.index("event_timestamp")
            shifted = pc.add(data["event_timestamp"], pa.scalar(shift.to_pytimedelta(), pa.duration("us")))
            data = data.set_column(index, "event_timestamp", shifted.cast(data.schema.field(index).type))
            out = target / part.relative_to(data_dir)
            out.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, out)
    shutil.copytree(data_dir / "transforms", target / "transforms")
    return target


def point_repo_at(repo, data_dir):
    settings = yaml.safe_load((repo / "profile_features.yaml").read_text())
    settings["data_dir"] = str(data_dir)
    (repo / "profile_features.yaml").write_text(yaml.safe_dump(settings))
    feast_cli(repo, "apply")


def test_new_data_after_the_demo_loads_or_fails_never_silently(tmp_path, pipeline_run, small_sample, capsys):
    """`make demo`'s repo state (applied and materialized up to now), then the repo pointed at another data
    set whose times lie inside the intervals the registry remembers: `materialize` must not exit 0 with an
    online store that serves none of it, and `--reload` loads it."""
    repo = make_repo(tmp_path, pipeline_run["data_dir"])
    feast_cli(repo, "apply")
    assert main(["materialize", "--repo", str(repo)]) == 0  # the demo's own load
    capsys.readouterr()

    point_repo_at(repo, other_data(pipeline_run["data_dir"], tmp_path / "own_data"))
    new_users = [f"new-{user}" for user in small_sample.user_tastes.user_id[:3]]
    assert read_profile(repo, new_users).profile_embedding.isna().all()
    assert main(["materialize", "--repo", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "does not hold the newest source rows" in err and "--reload" in err
    assert "user_profile (source" in err and "user_profile_embeddings" in err and "have no online row" in err
    assert read_profile(repo, new_users).profile_embedding.isna().all()  # nothing was claimed to load

    assert main(["materialize", "--repo", str(repo), "--reload"]) == 0
    printed = capsys.readouterr().out
    expected = table_rows(tmp_path / "own_data", "user_profile_embeddings", pd.Timestamp.now(tz="UTC"))
    assert "user_profile: reload" in printed and f"{expected} source rows" in printed
    assert "online store holds the newest row" in printed
    assert read_profile(repo, new_users).profile_embedding.notna().all()

    # Nothing new since the reload: an incremental run with a current online store exits 0.
    assert main(["materialize", "--repo", str(repo)]) == 0
    assert "user_profile: incremental" in capsys.readouterr().out


def test_start_loads_a_window_whatever_the_registry_remembers(tmp_path, pipeline_run, small_sample, capsys):
    repo = make_repo(tmp_path, pipeline_run["data_dir"])
    feast_cli(repo, "apply")
    assert main(["materialize", "--repo", str(repo), "--view", "user_profile"]) == 0
    point_repo_at(repo, other_data(pipeline_run["data_dir"], tmp_path / "own_data"))
    start = (pipeline_run["cutoffs"][0] - pd.Timedelta(days=800)).strftime("%Y-%m-%dT%H:%M:%S")
    assert main(["materialize", "--repo", str(repo), "--view", "user_profile", "--start", start]) == 0
    assert "user_profile: window" in capsys.readouterr().out
    new_users = [f"new-{user}" for user in small_sample.user_tastes.user_id[:3]]
    assert read_profile(repo, new_users).profile_embedding.notna().all()


def test_unknown_view_is_a_clear_error(tmp_path, pipeline_run, capsys):
    repo = make_repo(tmp_path, pipeline_run["data_dir"])
    feast_cli(repo, "apply")
    assert main(["materialize", "--repo", str(repo), "--view", "user_profiles"]) == 2
    assert "no applied feature view named user_profiles" in capsys.readouterr().err


def test_source_span_samples_each_entitys_newest_time(tmp_path):
    from profile_features.feast.materialize import source_span

    for day, users in (("2026-01-01", ["a", "b"]), ("2026-01-02", ["b", "c"])):
        folder = tmp_path / "t" / f"run_date={day}"
        folder.mkdir(parents=True)
        stamps = pd.to_datetime([f"{day}T10:00:00Z"] * len(users))
        pd.DataFrame({"user_id": users, "event_timestamp": stamps}).to_parquet(folder / "part.parquet")
    end = pd.Timestamp("2026-01-03", tz="UTC").to_pydatetime()
    span = source_span(str(tmp_path / "t"), "event_timestamp", end, key_columns=["user_id"])
    assert span.rows == 4 and span.first == pd.Timestamp("2026-01-01T10:00:00Z")
    assert span.latest == {
        ("a",): pd.Timestamp("2026-01-01T10:00:00Z"),
        ("b",): pd.Timestamp("2026-01-02T10:00:00Z"),
        ("c",): pd.Timestamp("2026-01-02T10:00:00Z"),
    }
    sampled = source_span(str(tmp_path / "t"), "event_timestamp", end, key_columns=["user_id"], sample=2)
    assert len(sampled.latest) == 2 and sampled.rows == 4  # the sample bounds memory, not the counts
    before = source_span(
        str(tmp_path / "t"), "event_timestamp", pd.Timestamp("2026-01-02", tz="UTC"), None, ["user_id"]
    )
    assert before.rows == 2 and before.latest[("b",)] == pd.Timestamp("2026-01-01T10:00:00Z")
