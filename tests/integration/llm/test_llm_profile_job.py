"""The Spark profile job with the test server: incremental refresh, fallbacks and dead
letters, the run summary, and a killed run re-run to completion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from profile_features.spark.profile_job import read_cache
from profile_features.spark.registry import run_stage
from tests.support.fake_openai import FakeOpenAIServer, FaultPlan
from tests.support.llm import CUTOFF, append_event_to_histories, job_config
from tests.support.repo import REPO_ROOT as REPO

pytestmark = pytest.mark.spark
RUN_DATE = CUTOFF[:10]


def openai_profile(server, **extra) -> dict:
    return {
        "generator": "openai",
        "openai": {
            "base_url": server.base_url,
            "model": "fake-llm",
            "timeout_s": 2,
            "max_retries": 0,
            "backoff_base_s": 0.0,
            "max_concurrency": 4,
        },
        "prompt": {"max_prompt_tokens": 4000},
        "cache": {"checkpoint_every": 4},
        "partitions": 2,
        **extra,
    }


def read_profiles(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "profiles" / f"run_date={RUN_DATE}").sort_values("user_id").reset_index(drop=True)


def change_histories(data_dir: Path, users: list[str]) -> None:
    """Append one event to these users' histories (new content, new hash), in place."""
    append_event_to_histories(data_dir / "histories" / f"run_date={RUN_DATE}", users)


def test_rule_based_default_runs_without_a_cache(spark, snapshot):
    summary = run_stage(spark, job_config(snapshot), "generate_profiles").summary()
    profiles = read_profiles(snapshot)
    assert summary["users"] == len(profiles) == profiles.user_id.nunique() > 0
    assert set(profiles.generator) == {"rule_based"} and summary["calls"] == 0 and summary["cache"] is None
    assert not list(snapshot.glob("_staging/profile-run-*"))  # the run's scratch store is gone


def test_incremental_refresh_regenerates_only_what_changed(spark, snapshot):
    with FakeOpenAIServer() as server:
        config = job_config(snapshot, **openai_profile(server))
        first = run_stage(spark, config, "generate_profiles").summary()
        users = first["users"]
        assert first["calls"] == server.calls == users and first["cache_hits"] == 0
        assert first["fallbacks"] == first["rejects"] == 0 and first["tokens_in"] > 0 and first["tokens_out"] > 0
        profiles = read_profiles(snapshot)
        assert len(profiles) == profiles.user_id.nunique() == users
        assert set(profiles.generator) == {"openai"} and set(profiles.prompt_version) == {first["prompt_version"]}

        second = run_stage(spark, config, "generate_profiles").summary()
        assert second["calls"] == 0 and server.calls == users and second["cache_hits"] == users
        pd.testing.assert_frame_equal(read_profiles(snapshot), profiles)

        changed = sorted(profiles.user_id)[:3]
        change_histories(snapshot, changed)
        third = run_stage(spark, config, "generate_profiles").summary()
        assert third["calls"] == 3 and third["generated_users"] == 3 and third["cache_hits"] == users - 3
        after = read_profiles(snapshot)
        assert len(after) == users and (after.history_hash != profiles.history_hash).sum() == 3

        other_prompt = job_config(
            snapshot, **openai_profile(server, prompt={"max_prompt_tokens": 4000, "template": "long-v1"})
        )
        fourth = run_stage(spark, other_prompt, "generate_profiles").summary()
        assert fourth["calls"] == users and fourth["prompt_version"].startswith("long-v1+")
        # the cache keeps both prompt versions, compacted into one entry per key
        cache = read_cache(spark, str(snapshot / "profile_cache")).toPandas()
        assert len(cache) == users + 3 + users and not list((snapshot / "profile_cache" / "parts").glob("part-*"))
    runs = sorted((snapshot / "runs").glob("profiles-*.json"))
    assert json.loads(runs[-1].read_text())["calls"] == users


def test_fallbacks_are_recorded_dead_lettered_and_retried(spark, snapshot, caplog):
    caplog.set_level("INFO", logger="profile_features.profiles.progress")
    with FakeOpenAIServer(faults=FaultPlan(p500=0.35, seed=5)) as server:
        config = job_config(snapshot, **openai_profile(server))
        first = run_stage(spark, config, "generate_profiles").summary()
        # The driver followed the workers' checkpoints: its last progress line has the run's totals.
        progress = [r.getMessage() for r in caplog.records if r.name == "profile_features.profiles.progress"]
        n = first["generated_histories"]
        assert progress and progress[-1].startswith(f"profiles: {n}/{n} histories (100%), {first['calls']} calls")
        assert f"{first['fallbacks']} fallbacks" in progress[-1]
        profiles = read_profiles(snapshot)
        fell_back = profiles[profiles.generator == "rule_based_fallback"]
        assert 0 < first["fallbacks"] == len(fell_back) == first["fallbacks_in_output"] < first["users"]
        assert set(fell_back.model) == {"rules"} and first["reasons"]["fallback:http_500"] == len(fell_back)
        dead = pd.read_parquet(snapshot / "profile_dead_letters")
        dead = dead[dead.run_id == first["run_id"]]
        assert sorted(dead.user_id) == sorted(fell_back.user_id) and set(dead.reason) == {"fallback:http_500"}

        server.faults = FaultPlan()
        second = run_stage(spark, config, "generate_profiles").summary()  # retry_fallbacks: only the fallen-back users
        assert second["calls"] == len(fell_back) and second["fallbacks"] == 0
        assert set(read_profiles(snapshot).generator) == {"openai"}


def test_too_many_fallbacks_fail_the_run_after_the_summary(spark, snapshot):
    from profile_features.spark.profile_job import ProfileRunFailed

    with FakeOpenAIServer(faults=FaultPlan(p500=1.0)) as server:
        config = job_config(snapshot, **openai_profile(server, max_fallback_fraction=0.5))
        with pytest.raises(ProfileRunFailed, match="fell back"):
            run_stage(spark, config, "generate_profiles")
    assert list((snapshot / "runs").glob("profiles-*.json"))


def settled_calls(server, quiet_s: float = 1.0) -> int:
    """The server's call count once nothing is in flight and it has not moved for `quiet_s`."""
    calls, since = server.calls, time.monotonic()
    while server.in_flight or time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        if server.calls != calls or server.in_flight:
            calls, since = server.calls, time.monotonic()
    return calls


@pytest.mark.slow
def test_killed_run_rerun_ends_with_every_user_once(spark, snapshot, tmp_path):
    with FakeOpenAIServer(latency_s=0.3) as server:
        profile = openai_profile(server, partitions=1, cache={"checkpoint_every": 2})
        profile["openai"]["max_concurrency"] = 1
        config_file = tmp_path / "job.yaml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(snapshot),
                    "history": {"cutoff": CUTOFF},
                    "spark": {"master": "local[1]"},
                    "profile": profile,
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, str(REPO / "spark_jobs" / "generate_profiles.py"), "--config", str(config_file)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        parts = snapshot / "profile_cache" / "parts"
        deadline = time.monotonic() + 240
        while len(list(parts.glob("part-*.parquet"))) < 2:
            assert process.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)  # the whole job: driver JVM and Python workers
        process.wait(timeout=30)
        calls_before = settled_calls(server)  # a request the killed job had in flight still lands
        cached = read_cache(spark, str(snapshot / "profile_cache")).count()
        assert not (snapshot / "profiles").exists()  # nothing half-written

        summary = run_stage(spark, job_config(snapshot, **openai_profile(server)), "generate_profiles").summary()
        users = summary["users"]
        assert 4 <= cached < users and summary["cache_hits"] == cached
        assert summary["calls"] == users - cached and server.calls - calls_before == users - cached
        profiles = read_profiles(snapshot)
        assert len(profiles) == profiles.user_id.nunique() == users and profiles.profile_text.notna().all()
