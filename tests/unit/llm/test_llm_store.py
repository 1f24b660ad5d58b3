"""Worker-side checkpointing of cache entries and dead letters (no Spark)."""

from __future__ import annotations

import json

import pandas as pd

from profile_features.profiles import RuleBasedProfileWriter
from profile_features.profiles.config import ProfileConfig
from profile_features.profiles.stage import generator_key, make_generator
from profile_features.profiles.store import CheckpointWriter, generate_checkpointed, list_parts
from profile_features.profiles.tables import DEAD_LETTERS, PROFILE_CACHE, RUN_STATS
from tests.support.fake_openai import FakeOpenAIServer


def test_checkpoints_every_n_users_with_dead_letters(tmp_path, histories_frame):
    with FakeOpenAIServer() as server:
        server.script("empty", "ok", *["500"] * 3)
        config = ProfileConfig.model_validate(
            {
                "generator": "openai",
                "prompt": {"max_prompt_tokens": 4000},
                "openai": {
                    "base_url": server.base_url,
                    "model": "fake-llm",
                    "max_retries": 2,
                    "backoff_base_s": 0.0,
                    "max_concurrency": 1,
                },
            }
        )
        key = generator_key(config)
        writer = CheckpointWriter(str(tmp_path / "cache"), str(tmp_path / "dead"), "run1", "2030-01-01")
        batches = [histories_frame.iloc[:7], histories_frame.iloc[7:10]]
        stats = pd.concat(generate_checkpointed(iter(batches), make_generator(config), key, writer, every=3))
    assert list(stats.columns) == RUN_STATS.names and stats.users.tolist() == [3, 3, 1, 3]
    assert stats.users.sum() == 10 and stats.fallbacks.sum() == 1 and stats.regenerations.sum() == 1
    assert stats.calls.sum() == server.calls == 10 + 1 + 2
    reasons = {}
    for row in stats.reasons_json:
        for reason, n in json.loads(row).items():
            reasons[reason] = reasons.get(reason, 0) + n
    assert reasons == {"empty": 1, "fallback:http_500": 1} and stats.rejects.sum() == 1
    parts = list_parts(str(tmp_path / "cache"))
    assert len(parts) == 4 and not list((tmp_path / "cache" / "_tmp").iterdir())
    cache = pd.read_parquet(tmp_path / "cache" / "parts")
    assert list(cache.columns) == PROFILE_CACHE.names and len(cache) == 10
    assert sorted(cache.history_hash) == sorted(histories_frame.history_hash.iloc[:10])
    assert set(cache.key_generator) == {"openai"} and set(cache.key_prompt_version) == {key[2]}
    fallback = cache[cache.status == "fallback"]
    assert len(fallback) == 1 and fallback.generator.iloc[0] == "rule_based_fallback"
    assert fallback.key_generator.iloc[0] == "openai" and fallback.fallback_reason.iloc[0] == "http_500"
    dead = pd.read_parquet(tmp_path / "dead" / "run_date=2030-01-01")
    assert list(dead.columns) == DEAD_LETTERS.names and sorted(dead.reason) == ["empty", "fallback:http_500"]


def test_rule_based_batches_need_no_server(tmp_path, histories_frame):
    writer = CheckpointWriter(str(tmp_path / "c"), str(tmp_path / "d"), "r", "2030-01-01")
    key = generator_key(ProfileConfig())
    stats = pd.concat(generate_checkpointed(iter([histories_frame]), RuleBasedProfileWriter(), key, writer, every=100))
    assert stats.users.sum() == len(histories_frame) and stats.calls.sum() == 0
    cache = pd.read_parquet(tmp_path / "c" / "parts")
    assert set(cache.generator) == {"rule_based"} and set(cache.status) == {"ok"}
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("*.parquet"))
