"""The profile stage: histories batch -> profiles batch, for any generator."""

from __future__ import annotations

import pandas as pd

from profile_features.profiles.config import ProfileConfig
from profile_features.histories import history_events
from profile_features.profiles.base import ProfileGenerator, UserHistory
from profile_features.profiles.rule_based import RuleBasedProfileWriter

__all__ = ["make_generator", "generate_profiles"]


def make_generator(config: ProfileConfig) -> ProfileGenerator:
    """Build the configured generator (called once per worker)."""
    if config.generator == "rule_based":
        return RuleBasedProfileWriter(max_titles=config.max_titles)
    raise ValueError(f"profile.generator: unknown generator {config.generator!r}")


def generate_profiles(histories: pd.DataFrame, generator: ProfileGenerator) -> pd.DataFrame:
    """Write one profile per history row.

    Args:
        histories: HISTORIES rows.
        generator: any `ProfileGenerator`.

    Returns:
        PROFILES rows, in input order, carrying the history hash as provenance.
    """
    histories = histories.reset_index(drop=True)
    inputs = [
        UserHistory(row.user_id, history_events(row.history_json), row.history_hash)
        for row in histories.itertuples(index=False)
    ]
    profiles = generator.generate(inputs) if inputs else []
    if len(profiles) != len(inputs):
        raise RuntimeError(f"{generator.name} returned {len(profiles)} profiles for {len(inputs)} histories")
    return pd.DataFrame(
        {
            "user_id": histories["user_id"],
            "event_timestamp": histories["event_timestamp"],
            "profile_text": [p.text for p in profiles],
            "generator": [p.generator for p in profiles],
            "model": [p.model for p in profiles],
            "prompt_version": [p.prompt_version for p in profiles],
            "history_hash": histories["history_hash"],
            "history_length": histories["history_length"].astype("int64"),
        }
    )
