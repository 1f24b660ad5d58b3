"""The profile generator Protocol: histories in, profile texts out, with provenance and counts."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "UserHistory",
    "GeneratedProfile",
    "Rejection",
    "UserOutcome",
    "ProfileGenerator",
    "FALLBACK_GENERATOR",
    "event_year",
]

# The generator name of a profile the rule-based writer wrote because an LLM gave no acceptable one.
FALLBACK_GENERATOR = "rule_based_fallback"


def event_year(event: dict) -> int | None:
    """The event's year, or None when missing (None, NaN from a pandas column, 0). Numpy
    scalars count: numbers.Real covers numpy ints, which are not Python ints."""
    year = event.get("year")
    if isinstance(year, bool) or not isinstance(year, numbers.Real) or not math.isfinite(year):
        return None
    return int(year) or None


@dataclass(frozen=True)
class UserHistory:
    """One user's history as the generator sees it.

    `events` are dicts with item_id, timestamp (ISO), rating, event_type, title,
    genres (list), year and description, oldest first.
    """

    user_id: str
    events: list[dict]
    history_hash: str


@dataclass(frozen=True)
class GeneratedProfile:
    """A profile text and what produced it (kept as provenance columns)."""

    user_id: str
    text: str
    generator: str
    model: str
    prompt_version: str


@dataclass(frozen=True)
class Rejection:
    """An output (or a request) that did not become a profile."""

    reason: str  # quality reason, or backend failure code, or "fallback:<cause>"
    detail: str = ""
    text: str = ""  # the rejected output, if there was one


@dataclass
class UserOutcome:
    """What happened to one user: the profile plus the counts the run summary adds up."""

    index: int  # position in the input batch
    user_id: str
    history_hash: str
    profile: GeneratedProfile
    status: str = "ok"  # "ok" | "fallback"
    fallback_reason: str | None = None
    calls: int = 0  # requests sent to the backend, retries included
    retries: int = 0  # transient or malformed responses sent again
    regenerations: int = 0  # outputs rejected by a quality gate and asked again
    tokens_in: int = 0
    tokens_out: int = 0
    chunks: int = 1
    rejections: list[Rejection] = field(default_factory=list)
    reported_models: Counter = field(default_factory=Counter)  # model the server named -> completions


@runtime_checkable
class ProfileGenerator(Protocol):
    """Writes a short textual profile per user. Implementations: rule-based, LLM backends.

    `run` is what the profile stage calls: one `UserOutcome` per input history, in completion
    order, so a worker can checkpoint as it goes. `generate` is the same in input order,
    profiles only.
    """

    name: str
    model: str
    prompt_version: str

    def run(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]: ...

    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]: ...
