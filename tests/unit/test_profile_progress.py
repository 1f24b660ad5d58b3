"""GenerationProgress adds up the run's own checkpoint files, as workers write them."""

from datetime import datetime, timezone

from profile_features.profiles.progress import GenerationProgress
from profile_features.profiles.store import CheckpointWriter

KEY = ("openai", "m", "v1")


def cache_row(i: int, status: str = "ok", calls: int = 1) -> dict:
    return {
        "history_hash": f"h{i}",
        "key_generator": KEY[0],
        "key_model": KEY[1],
        "key_prompt_version": KEY[2],
        "profile_text": "t",
        "generator": "openai",
        "model": "m",
        "prompt_version": "v1",
        "status": status,
        "fallback_reason": None,
        "calls": calls,
        "tokens_in": 100,
        "tokens_out": 20,
        "run_id": "r",
        "created_at": datetime.now(timezone.utc),
    }


def test_counts_this_runs_checkpoints_once_each(tmp_path, caplog):
    cache = str(tmp_path / "cache")
    ours = CheckpointWriter(cache, str(tmp_path / "dead"), "run1", "2026-01-01")
    other = CheckpointWriter(cache, str(tmp_path / "dead"), "run0", "2026-01-01")
    other.write([cache_row(i) for i in range(5)], [])  # an earlier run's parts: not this run's progress
    caplog.set_level("INFO", logger="profile_features.profiles.progress")
    with GenerationProgress(cache, "run1", total=4, interval=0.05, log_every=3600) as progress:
        ours.write([cache_row(0), cache_row(1, status="fallback", calls=3)], [])
        assert progress.poll()["users"] == 2
        ours.write([cache_row(2)], [])
    assert progress.totals == {"users": 3, "calls": 5, "tokens_in": 300, "tokens_out": 60, "fallbacks": 1}
    assert progress._bar.disable  # no terminal here: no bar, only the log line
    last = [r.getMessage() for r in caplog.records][-1]
    assert last.startswith("profiles: 3/4 histories (75%), 5 calls, 300 tokens in, 60 tokens out, 1 fallbacks, ETA ")
