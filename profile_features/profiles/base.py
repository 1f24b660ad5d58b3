"""The profile generator Protocol: histories in, profile texts out, with provenance."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["UserHistory", "GeneratedProfile", "ProfileGenerator", "event_year"]


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


@runtime_checkable
class ProfileGenerator(Protocol):
    """Writes a short textual profile per user. Implementations: rule-based, LLM backends.

    `generate` takes a batch so backends can batch or run requests concurrently; it
    returns one profile per input history, in input order.
    """

    name: str
    model: str
    prompt_version: str

    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]: ...
