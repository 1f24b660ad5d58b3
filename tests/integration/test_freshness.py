"""Freshness on Spark: the Spark refresh plan equals the in-memory one, the profile job regenerates only
the planned users while every user keeps exactly one profile, and the reports on the pipeline's snapshots."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profile_features import schemas
from profile_features.cli import main
from profile_features.config import JobConfig, SampleConfig
from profile_features.freshness import drift_report, plan_refresh
from profile_features.freshness.refresh_plan import FALLBACK_GENERATOR, TIERS
from profile_features.spark.refresh_plan_job import build_refresh_plan
from tests.unit.test_freshness import plan_inputs, write_run


@pytest.mark.spark
def test_spark_plan_equals_the_in_memory_plan(tmp_path, spark):
    """The same inputs as tables on disk: the Spark joins and the pandas merge give the same ranked plan,
    and only the budget's rows are selected."""
    current, profiles, student, earlier = plan_inputs()
    earlier = earlier.assign(history_length=1, history_json="[]")
    write_run(tmp_path, "histories", "2026-01-01", earlier)
    write_run(tmp_path, "histories", "2026-02-01", current)
    write_run(tmp_path, "profiles", "2026-02-01", profiles)
    write_run(tmp_path, "user_student", "2026-01-15", student)
    expected = plan_refresh(current, profiles, student, earlier, min_drift=0.05)
    selected, summary = build_refresh_plan(tmp_path, budget=100, min_drift=0.05, spark=spark)
    pd.testing.assert_frame_equal(selected, expected, check_dtype=False)
    assert summary["runs"] == {"histories": "2026-02-01", "profiles": "2026-02-01", "user_student": "2026-01-15"}
    assert summary["candidates"] == expected.reason.value_counts().reindex(list(TIERS), fill_value=0).to_dict()
    top, top_summary = build_refresh_plan(tmp_path, budget=4, min_drift=0.05, spark=spark)
    pd.testing.assert_frame_equal(top, expected.head(4), check_dtype=False)
    assert top_summary["selected_total"] == 4 and top_summary["candidates"] == summary["candidates"]


# ---------------------------------------------------------------- plan -> profile job (Spark)


def write_histories(data_dir: Path, run_date: str, frame: pd.DataFrame) -> None:
    folder = data_dir / "histories" / f"run_date={run_date}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(frame[schemas.HISTORIES.names], schema=schemas.HISTORIES, preserve_index=False),
        folder / "part-0.parquet",
    )


def two_snapshots(data_dir: Path, unchanged: int = 0):
    """Histories of 12 sample users at two cutoffs; two users of the first are dropped (as
    if new), and `unchanged` users keep their first history in the second snapshot."""
    from profile_features.datasets import generate_sample
    from profile_features.histories import build_histories

    sample = generate_sample(SampleConfig(users=12, items=30, mean_interactions=8, seed=5))
    events = sample.interactions.merge(sample.items, on="item_id")
    times = sample.interactions.timestamp
    first_cut = times.quantile(0.6).to_pydatetime().replace(hour=0, minute=0, second=0, microsecond=0)
    second_cut = times.max().to_pydatetime().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    old = build_histories(events, first_cut, 20)
    new = build_histories(events, second_cut, 20)
    old = old[~old.user_id.isin(sorted(old.user_id)[:2])].reset_index(drop=True)
    for user in old.user_id[:unchanged]:
        new.loc[new.user_id == user, ["history_json", "history_hash", "history_length"]] = old.loc[
            old.user_id == user, ["history_json", "history_hash", "history_length"]
        ].to_numpy()
    write_histories(data_dir, first_cut.date().isoformat(), old)
    write_histories(data_dir, second_cut.date().isoformat(), new)
    catalogue = data_dir / "validated" / "items"  # the profile job reads the catalogue's common terms
    catalogue.mkdir(parents=True)
    items = sample.items.astype({"year": "Int64"})
    pq.write_table(
        pa.Table.from_pandas(items[schemas.ITEMS.names], schema=schemas.ITEMS, preserve_index=False),
        catalogue / "part-0.parquet",
    )
    return old, new, first_cut, second_cut


def job_config(data_dir: Path, cutoff: datetime, **profile) -> JobConfig:
    return JobConfig.model_validate(
        {"data_dir": str(data_dir), "history": {"cutoff": cutoff.isoformat()}, "profile": profile}
    )


@pytest.mark.spark
def test_profile_job_regenerates_only_the_planned_users(tmp_path, spark, capsys):
    from profile_features.spark.registry import run_stage

    data_dir = tmp_path / "data"
    old, new, first_cut, second_cut = two_snapshots(data_dir)
    newcomers = set(new.user_id) - set(old.user_id)  # also users whose first event is later
    config = lambda cutoff, **profile: job_config(data_dir, cutoff, **profile)  # noqa: E731

    first = run_stage(spark, config(first_cut), "generate_profiles").summary()
    assert first["users"] == len(old) and first["refresh"] is None
    before = pd.read_parquet(data_dir / "profiles" / f"run_date={first_cut.date()}").set_index("user_id")

    # The plan: newcomers first (the longer history first), then changed histories.
    plan_path = tmp_path / "plan.csv"
    budget = len(newcomers) + 1
    assert main(["refresh-plan", "--data-dir", str(data_dir), "--budget", str(budget), "--out", str(plan_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["selected_total"] == budget and summary["runs"]["profiles"] == str(first_cut.date())
    plan = pd.read_csv(plan_path)
    lengths = new.set_index("user_id").history_length[plan.user_id[:-1]]
    assert set(plan.user_id[:-1]) == newcomers and set(plan.reason[:-1]) == {"missing_profile"}
    assert lengths.is_monotonic_decreasing and plan.reason.iloc[-1] == "history_changed"
    changed_users = set(new.merge(old, on="user_id").query("history_hash_x != history_hash_y").user_id)
    assert summary["candidates"]["history_changed"] == len(changed_users) > 1

    # Keep one newcomer off the list (it gets a stand-in); add an unknown id and a repeat.
    listed = plan.user_id[1:].tolist()
    pd.DataFrame({"user_id": listed + ["nobody", listed[0]]}).to_csv(plan_path, index=False)
    second = run_stage(spark, config(second_cut, only_users=str(plan_path)), "generate_profiles").summary()

    after = pd.read_parquet(data_dir / "profiles" / f"run_date={second_cut.date()}")
    assert len(after) == after.user_id.nunique() == len(new) == second["profiles"]
    after = after.set_index("user_id")
    current_hash = new.set_index("user_id").history_hash
    assert second["generated_users"] == len(listed) == budget - 1 and second["cache_hits"] == 0
    assert second["refresh"]["rejected"] == {"duplicate_user_id": 1, "unknown_user": 1}
    assert second["refresh"]["listed_users"] == len(listed) and second["refresh"]["listed_rows"] == len(listed) + 2
    kept_users = sorted(set(new.user_id) - set(listed) - {plan.user_id[0]})
    assert second["refresh"]["kept"] == {
        "from_cache": 0,
        "previous": len(kept_users),
        "stand_in": 1,
        "previous_run": str(first_cut.date()),
    }
    for user in listed + [plan.user_id[0]]:  # regenerated or stand-in: written from the current history
        assert after.loc[user, "history_hash"] == current_hash[user]
    for user in kept_users:  # the previous profile, old provenance, this snapshot's timestamp
        assert after.loc[user, "history_hash"] == before.loc[user, "history_hash"]
        assert after.loc[user, "profile_text"] == before.loc[user, "profile_text"]
        assert after.loc[user, "event_timestamp"] == pd.Timestamp(second_cut)
    rejects = pd.read_parquet(data_dir / "profile_refresh_rejects" / f"run_date={second_cut.date()}")
    assert sorted(rejects.reason) == ["duplicate_user_id", "unknown_user"]
    assert set(rejects.source_file) == {str(plan_path)}

    # The next plan sees the kept users' profiles as written from an older history.
    replanned, replan_summary = build_refresh_plan(data_dir, budget=100)
    assert set(replanned.query("reason == 'history_changed'").user_id) == set(kept_users) & changed_users
    assert replan_summary["candidates"]["missing_profile"] == 0


@pytest.mark.spark
def test_llm_refresh_calls_the_llm_only_for_listed_users(tmp_path, spark):
    """With an LLM generator and its cache: one call per listed user; unlisted users take the
    cached profile of their unchanged history, their previous profile, or a labelled stand-in."""
    from profile_features.spark.registry import run_stage
    from tests.support.fake_openai import FakeOpenAIServer

    data_dir = tmp_path / "data"
    old, new, first_cut, second_cut = two_snapshots(data_dir, unchanged=2)
    with FakeOpenAIServer() as server:
        llm = {
            "generator": "openai",
            "partitions": 2,
            "openai": {"base_url": server.base_url, "model": "fake-llm", "timeout_s": 2, "max_retries": 0},
        }
        run_stage(spark, job_config(data_dir, first_cut, **llm), "generate_profiles")
        assert server.calls == len(old)
        changed = new.merge(old, on="user_id").query("history_hash_x != history_hash_y").user_id.tolist()
        listed = changed[:1]
        pd.DataFrame({"user_id": listed}).to_parquet(tmp_path / "plan.parquet")
        summary = run_stage(
            spark,
            job_config(data_dir, second_cut, only_users=str(tmp_path / "plan.parquet"), **llm),
            "generate_profiles",
        ).summary()
        assert server.calls == len(old) + 1 and summary["calls"] == 1 and summary["generated_users"] == 1
    newcomers = set(new.user_id) - set(old.user_id)
    unchanged = len(old) - len(changed)  # the two copied users, and any without later events
    assert unchanged >= 2
    assert summary["refresh"]["kept"] == {
        "from_cache": unchanged,
        "previous": len(changed) - 1,
        "stand_in": len(newcomers),
        "previous_run": str(first_cut.date()),
    }
    assert summary["refresh"]["rejected"] == {}
    after = pd.read_parquet(data_dir / "profiles" / f"run_date={second_cut.date()}").set_index("user_id")
    assert len(after) == len(new) and after.index.is_unique
    assert set(after.loc[sorted(newcomers), "generator"]) == {FALLBACK_GENERATOR}
    assert after.loc[listed[0], "generator"] == "openai"
    assert after.loc[listed[0], "history_hash"] == new.set_index("user_id").loc[listed[0], "history_hash"]


@pytest.mark.spark
@pytest.mark.slow
def test_reports_on_the_pipeline_snapshots(pipeline_run, tmp_path):
    """The real pipeline's two snapshots share one transform, so they compare; the plan
    over the real tables ranks users and respects the budget."""
    data_dir = pipeline_run["config"].data_dir
    report = drift_report(data_dir)
    assert report["reference"]["transform_id"] == report["current"]["transform_id"] is not None
    assert len(report["dimensions"]) == pipeline_run["config"].semantic.components
    assert (
        sum(r["current_count"] for r in report["clusters"]["table"])
        == report["current_rows"] - report["current_without_vector"]
    )
    assert -1 <= report["mean_vector_cosine"] <= 1
    selected, summary = build_refresh_plan(data_dir, fraction=0.1)
    assert len(selected) == summary["budget"] == math.floor(0.1 * summary["users_with_history"])
    assert selected["rank"].tolist() == list(range(1, len(selected) + 1))
    assert summary["runs"]["user_student"] == summary["runs"]["histories"]
