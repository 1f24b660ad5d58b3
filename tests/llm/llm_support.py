"""Helpers shared by the LLM test modules (imported by name: tests/llm is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from profile_features.config import JobConfig

CUTOFF = "2030-01-01T00:00:00Z"  # after every sample interaction


def job_config(data_dir: Path, **profile) -> JobConfig:
    return JobConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "history": {"cutoff": CUTOFF, "max_length": 30},
            "spark": {"master": "local[2]"},
            "profile": profile,
        }
    )
