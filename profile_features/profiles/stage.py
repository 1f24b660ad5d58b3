"""The profile stage: histories batch -> profiles batch, for any generator."""

from __future__ import annotations

import pandas as pd

from profile_features.histories import history_events
from profile_features.profiles.backends import BACKENDS, Backend, renderer_for
from profile_features.profiles.base import ProfileGenerator, UserHistory
from profile_features.profiles.config import ProfileConfig
from profile_features.profiles.sanitize import SanitizedGenerator, sanitizer_version

__all__ = ["make_generator", "generator_key", "generate_profiles", "renderer_for"]


def make_generator(
    config: ProfileConfig, threads: int | None = None, common_terms: frozenset[str] = frozenset()
) -> ProfileGenerator:
    """Build the configured generator (called once per task, on the worker), wrapped in the
    sanitising step (events cleaned before it reads them, profiles after it writes them).

    Args:
        config: the `profile:` section.
        threads: torch threads for a local model (None: torch's default).
        common_terms: the catalogue's too-common words, for the rule-based writer (terms.common_terms).
    """
    return SanitizedGenerator(_backend(config).build(config, threads, common_terms), config.sanitize)


def generator_key(config: ProfileConfig, common_terms: frozenset[str] = frozenset()) -> tuple[str, str, str]:
    """(generator, model, prompt_version) of the configured generator, without loading
    a model: the profile cache key besides the history hash. The sanitising rules are part of every key."""
    generator, model, version = _backend(config).key(config, common_terms)
    return generator, model, f"{version}+{sanitizer_version(config.sanitize)}"


def _backend(config: ProfileConfig) -> Backend:
    if config.generator not in BACKENDS:
        raise ValueError(f"profile.generator: unknown generator {config.generator!r} (known: {', '.join(BACKENDS)})")
    return BACKENDS[config.generator]


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
