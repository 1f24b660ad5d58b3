"""The quality benchmark writes profiles only from interactions before the split."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from profile_features.student.data import leave_last_out, temporal_split, user_sequences
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.repo import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("student_quality")


def _write_ml100k(root: Path, users: int = 12, items: int = 40, per_user: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, users + 1):
        for t, i in enumerate(rng.choice(np.arange(1, items + 1), size=per_user, replace=False)):
            rows.append((u, int(i), int(rng.integers(1, 6)), 880_000_000 + 1000 * t + u))
    pd.DataFrame(rows).to_csv(root / "u.data", sep="\t", header=False, index=False)
    lines = []
    for i in range(1, items + 1):
        flags = ["0"] * 19
        flags[1 + i % 18] = "1"
        lines.append("|".join([str(i), f"Film{i:03d} ({1950 + i})", "01-Jan-1995", "", "http://x", *flags]))
    (root / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return rows


def test_profiles_ignore_held_out_items(bench, tmp_path):
    _write_ml100k(tmp_path)
    inter, items = bench.load_ml100k(tmp_path)
    ratings = {(u, i): float(r) for u, i, r in zip(inter["user_id"], inter["item_id"], inter["rating"])}
    split = leave_last_out(user_sequences(inter))
    writer = bench.profile_writer()
    texts = bench.build_profile_texts(split.train, ratings, items, writer)
    titles = dict(zip(items["item_id"], items["title"]))
    for user, text in texts.items():
        for held_out in (split.valid_target[user], split.test_target[user]):
            assert titles[held_out] not in text
    # Changing the held-out interactions (items and ratings) changes no profile.
    changed = inter.copy()
    last_two = changed.sort_values("timestamp").groupby("user_id").tail(2).index
    changed.loc[last_two, "item_id"] = "1"
    changed.loc[last_two, "rating"] = 5.0
    ratings2 = {(u, i): float(r) for u, i, r in zip(changed["user_id"], changed["item_id"], changed["rating"])}
    split2 = leave_last_out(user_sequences(changed))
    assert bench.build_profile_texts(split2.train, ratings2, items, writer) == texts


def test_benchmark_run_feeds_profiles_the_training_part_only(bench, tmp_path, monkeypatch):
    _write_ml100k(tmp_path)
    inter, _ = bench.load_ml100k(tmp_path)
    full = user_sequences(inter)
    seen = {}

    real_build = bench.build_profile_texts

    def spy(train_histories, ratings, items, generator, cache=None):
        seen.update(train_histories)
        return real_build(train_histories, ratings, items, generator, cache)

    def fake_embed(texts, cache_dir, kind="profiles"):
        return {
            u: np.random.default_rng(abs(hash(t)) % 2**32).normal(size=6).astype(np.float32) for u, t in texts.items()
        }

    monkeypatch.setattr(bench, "build_profile_texts", spy)
    monkeypatch.setattr(bench, "embed_texts", fake_embed)
    common = [
        "--data",
        str(tmp_path),
        "--variants",
        "plain,distill",
        "--seeds",
        "0",
        "--quiet",
        "--set",
        "train.epochs=1",
        "--set",
        "body.max_len=8",
        "--set",
        "train.num_threads=1",
    ]
    assert bench.main([*common, "--unseen-fraction", "0", "--cache-dir", str(tmp_path / "c0")]) == 0
    assert seen and all(seen[u] == full[u][:-2] for u in seen)
    seen.clear()
    # Items held out of training (the unseen-items slice) are in no history a profile is written from.
    assert bench.main([*common, "--cache-dir", str(tmp_path / "c1")]) == 0
    unseen = bench.hold_out_items(inter["item_id"], 0.05, seed=0)
    assert unseen and seen and all(seen[u] == [i for i in full[u][:-2] if i not in unseen] for u in seen)
    seen.clear()
    assert bench.main([*common, "--protocol", "temporal", "--cache-dir", str(tmp_path / "c2")]) == 0
    cutoff = temporal_split(inter, 0.8).cutoff
    ts = dict(zip(zip(inter["user_id"], inter["item_id"]), inter["timestamp"]))
    assert seen and all(ts[(u, i)] < cutoff for u, hist in seen.items() for i in hist)


def test_llm_profiles_come_from_the_configured_server_and_resume_from_the_cache(bench, tmp_path, monkeypatch):
    data = tmp_path / "ml-100k"
    data.mkdir()
    _write_ml100k(data)
    embedded: dict[str, str] = {}

    def fake_embed(texts, cache_dir, kind="profiles"):
        if kind != "profiles":
            return {i: np.random.default_rng(len(t)).normal(size=6).astype(np.float32) for i, t in texts.items()}
        embedded.update(texts)
        return {u: np.random.default_rng(int(u)).normal(size=6).astype(np.float32) for u in texts}

    monkeypatch.setattr(bench, "embed_texts", fake_embed)
    with FakeOpenAIServer() as server:
        config = tmp_path / "llm.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "profile": {
                        "generator": "openai",
                        "openai": {"base_url": server.base_url, "model": "fake-llm", "api_key_env": None},
                    }
                }
            )
        )
        args = [
            "--data",
            str(data),
            "--variants",
            "plain",
            "--seeds",
            "0",
            "--quiet",
            "--set",
            "train.epochs=1",
            "--set",
            "body.max_len=8",
            "--set",
            "train.num_threads=1",
            "--profile-config",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
        assert bench.main(args) == 0
        # One request per user, and every profile is the served model's text (no rule-based fallback).
        assert len(embedded) == 12 and server.calls == 12
        assert all(text.startswith("Preferences: mostly") for text in embedded.values())
        first = dict(embedded)
        embedded.clear()
        # A run of another seed (finished runs are cached) reads every profile text from the cache.
        assert bench.main([a if a != "0" else "1" for a in args]) == 0
        assert server.calls == 12 and embedded == first


def test_llm_fallbacks_are_counted(bench, tmp_path, capsys):
    data = tmp_path / "ml-100k"
    data.mkdir()
    _write_ml100k(data, users=3)
    inter, items = bench.load_ml100k(data)
    ratings = {(u, i): float(r) for u, i, r in zip(inter["user_id"], inter["item_id"], inter["rating"])}
    train = leave_last_out(user_sequences(inter)).train
    with FakeOpenAIServer() as server:
        config = tmp_path / "llm.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "profile": {
                        "generator": "openai",
                        "openai": {
                            "base_url": server.base_url,
                            "model": "fake-llm",
                            "api_key_env": None,
                            "max_retries": 0,
                            "max_concurrency": 1,
                        },
                    }
                }
            )
        )
        server.script("500")  # the first user's only request fails: that user falls back
        texts = bench.build_profile_texts(train, ratings, items, bench.profile_writer(str(config)))
    assert sum(t.startswith("Preferences: mostly") for t in texts.values()) == 2
    assert "1 of 3 users fell back to the rule-based writer" in capsys.readouterr().err


def test_a_damaged_text_cache_names_the_file_and_line(bench, tmp_path):
    data = tmp_path / "ml-100k"
    data.mkdir()
    _write_ml100k(data, users=2)
    inter, items = bench.load_ml100k(data)
    train = leave_last_out(user_sequences(inter)).train
    cache = tmp_path / "texts.jsonl"
    cache.write_text('{"user_id": "1", "history_hash": "x", "text": "t", "generator": "g"}\n{"user_id": "2", "hist\n')
    with pytest.raises(ValueError, match=r"texts\.jsonl: line 2 is not a cached profile"):
        bench.build_profile_texts(train, {}, items, bench.profile_writer(), cache)


def test_benchmark_variant_names_are_checked(bench):
    """The default variant list names variants that exist; an unknown name is refused before any data is read."""
    assert set(bench.parse_args([]).variants.split(",")) <= set(bench.VARIANTS)
    with pytest.raises(SystemExit):
        bench.parse_args(["--variants", "plain,no_such_variant"])


def test_post_cutoff_reads_a_csv_pair_and_pairs_differences_over_users(bench, tmp_path):
    pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["1", "2", "1"], "timestamp": [30, 10, 20]}).to_csv(
        tmp_path / "interactions.csv", index=False
    )
    pd.DataFrame({"item_id": ["1", "2"], "title": ["One", None], "genres": ["Rock|Pop", None]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    inter, items = bench.load_benchmark_dataset("any-name", tmp_path)
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"] and inter.rating.isna().all()
    assert items.genres.tolist() == [["Rock", "Pop"], []] and items.title.tolist() == ["One", ""]
    # Two seeds x three users: each user's mean over seeds is one observation.
    candidate = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    baseline = np.zeros((2, 3))
    result = bench.paired_interval(candidate, baseline)
    per_user = np.array([0.5, 0.0, 0.0])
    se = per_user.std(ddof=1) / np.sqrt(3)
    assert result["difference"] == pytest.approx(per_user.mean())
    assert result["interval"] == pytest.approx([per_user.mean() - 1.96 * se, per_user.mean() + 1.96 * se])
    assert result["beyond_noise"] == "within" and not result["harm_excluded"]


def test_rolling_origin_pools_each_users_cutoffs_into_one_observation(bench):
    """With several cutoffs a user is tested more than once; the interval counts users, not (cutoff, user) rows."""
    # One seed, four observations: user a at two cutoffs (+1 and 0), b once (+0.5), c once (0).
    candidate = np.array([[1.0, 0.0, 0.5, 0.0]])
    baseline = np.zeros((1, 4))
    result = bench.paired_interval(candidate, baseline, np.array(["a", "a", "b", "c"], dtype=object))
    per_user = np.array([0.5, 0.5, 0.0])  # a's mean over its cutoffs, b, c
    se = per_user.std(ddof=1) / np.sqrt(3)
    assert result["users"] == 3
    assert result["difference"] == pytest.approx(per_user.mean())
    assert result["interval"][0] == pytest.approx(per_user.mean() - 1.96 * se)
    # Rows counted as users would give four observations and another mean.
    assert bench.paired_interval(candidate, baseline)["difference"] == pytest.approx(0.375)
    # Non-inferiority: the bound against -5% of the baseline's mean.
    close = bench.paired_interval(np.array([[0.99, 1.0, 1.0, 0.98]]), np.ones((1, 4)))
    assert close["non_inferior"] and not close["harm_excluded"]
