"""`generate_profiles --dry-run`: the run's own plan counted, nothing generated or written, cost
from `profile.pricing`, output tokens learnt from the last run. (Real tokenizers: test_llm_real_models.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from profile_features.profiles.config import ProfileConfig
from profile_features.profiles.estimate import price
from profile_features.spark.profile_estimate import estimate_profiles
from profile_features.spark.registry import run_stage
from tests.integration.llm.test_llm_profile_job import change_histories, openai_profile
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.llm import CUTOFF, job_config
from tests.support.repo import REPO_ROOT as REPO

pytestmark = pytest.mark.spark

PRICING = {"input_per_million": 0.15, "output_per_million": 0.60}


def test_price_is_per_million_tokens_in_and_out():
    config = ProfileConfig(pricing=PRICING)
    assert price(config, 2_000_000, 500_000) == {"input": 0.3, "output": 0.3, "total": 0.6, "currency": "USD"}
    assert price(ProfileConfig(), 1, 1) is None


def test_dry_run_counts_the_plan_and_writes_nothing_but_its_summary(spark, snapshot):
    with FakeOpenAIServer() as server:
        config = job_config(snapshot, **openai_profile(server, pricing=PRICING))
        users = len(pd.read_parquet(snapshot / "histories"))
        estimate = estimate_profiles(spark, config, sample=10)
        assert server.calls == 0  # nothing was generated
        assert not (snapshot / "profiles").exists() and not (snapshot / "profile_cache").exists()
        assert estimate["users_to_generate"] == users and estimate["cache_hits"] == 0
        assert estimate["sampled_histories"] == 10 and estimate["token_counter"] == "estimate (3.5 chars/token)"
        assert estimate["output_tokens_source"].startswith("generation.max_tokens")
        # Scaled from the sample to every history; one call each (the 4,000-token budget holds them).
        assert estimate["calls"] == estimate["histories_to_generate"] == users
        assert estimate["prompt_tokens"] > 100 * users and estimate["prompt_tokens_stderr"] > 0
        assert estimate["output_tokens"] == users * 160
        expected = price(config.profile, estimate["prompt_tokens"], estimate["output_tokens"])
        assert estimate["cost"]["total"] == pytest.approx(expected["total"], abs=1e-3) and expected["total"] > 0
        assert estimate["server_models"] == ["fake-llm"]

        first = run_stage(spark, config, "generate_profiles").summary()
        assert first["calls"] == estimate["calls"] and first["fallbacks"] == 0
        assert first["reported_models"] == {"fake-llm": first["calls"]}  # what the server said answered

        change_histories(snapshot, sorted(pd.read_parquet(snapshot / "histories").user_id)[:2])
        again = estimate_profiles(spark, config)
        assert again["users_to_generate"] == 2 and again["cache_hits"] == users - 2
        assert again["sampled_histories"] == 2 and again["prompt_tokens_stderr"] == 0  # every history counted
        assert again["output_tokens_per_call"] == pytest.approx(first["tokens_out"] / first["calls"], abs=0.05)
        assert again["output_tokens_source"] == f"mean per call in run {first['run_id']}"
    written = sorted((snapshot / "runs").glob("profiles-estimate-*.json"))
    assert len(written) == 2 and json.loads(written[-1].read_text())["users_to_generate"] == 2


def test_dry_run_from_the_entry_file(snapshot):
    with FakeOpenAIServer() as server:
        overrides = [f"profile.openai.base_url={server.base_url}", "profile.openai.model=fake-llm"]
        overrides += ["profile.generator=openai", f"history.cutoff={CUTOFF}", "spark.master=local[1]"]
        overrides += ["profile.pricing.input_per_million=1", "profile.pricing.output_per_million=2"]
        command = [sys.executable, str(REPO / "spark_jobs" / "generate_profiles.py"), "--dry-run", "--sample", "5"]
        command += [f"--set=data_dir={snapshot}"] + [f"--set={o}" for o in overrides]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        assert server.calls == 0
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["job"] == "profiles-estimate" and summary["sampled_histories"] == 5
    tokens_in, tokens_out = summary["prompt_tokens"], summary["output_tokens"]
    assert summary["cost"]["total"] == pytest.approx(tokens_in / 1e6 + 2 * tokens_out / 1e6, abs=1e-3)
    assert summary["calls"] == summary["histories_to_generate"] > 0
