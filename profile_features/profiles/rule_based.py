"""A deterministic profile writer: no LLM, the default and the fallback generator."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from profile_features.profiles.base import GeneratedProfile, UserHistory, event_year

__all__ = ["RuleBasedProfileWriter", "genre_shares"]


def genre_shares(events: Sequence[dict]) -> Counter:
    """Share of attention per genre; an event with k genres gives each 1/k."""
    shares: Counter = Counter()
    for event in events:
        genres = event.get("genres") or ["Unknown"]
        for genre in genres:
            shares[genre] += 1.0 / len(genres)
    total = sum(shares.values()) or 1.0
    return Counter({genre: value / total for genre, value in shares.items()})


def _ranked(shares: Counter) -> list[tuple[str, float]]:
    # Ties broken by name so the text is deterministic.
    return sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class RuleBasedProfileWriter:
    """Turns a history into a few sentences: genres, eras, ratings, titles, recent shift."""

    name = "rule_based"
    model = "rules"
    prompt_version = "rule-v1"

    def __init__(self, max_titles: int = 3, recent_fraction: float = 0.2, shift_threshold: float = 0.25):
        self.max_titles = max_titles
        self.recent_fraction = recent_fraction
        self.shift_threshold = shift_threshold

    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]:
        return [
            GeneratedProfile(h.user_id, self.describe(h.events), self.name, self.model, self.prompt_version)
            for h in histories
        ]

    def describe(self, events: Sequence[dict]) -> str:
        """The profile text of one history (oldest -> newest)."""
        if not events:
            return "No interactions yet."
        sentences = [self._genres(events)]
        for part in (self._eras(events), self._ratings(events), self._titles(events), self._shift(events)):
            if part:
                sentences.append(part)
        return " ".join(sentences)

    def _genres(self, events: Sequence[dict]) -> str:
        top = _ranked(genre_shares(events))[:3]
        listed = _join([f"{genre} ({share:.0%})" for genre, share in top])
        return f"Mostly interested in {listed} across {len(events)} interactions."

    def _eras(self, events: Sequence[dict]) -> str | None:
        decades = Counter(f"{year // 10 * 10}s" for year in map(event_year, events) if year)
        if not decades:
            return None
        top = _ranked(Counter({d: c / sum(decades.values()) for d, c in decades.items()}))[:2]
        return f"Prefers titles from the {_join([decade for decade, _ in top])}."

    def _ratings(self, events: Sequence[dict]) -> str | None:
        # Only genres the user sees often: a mean over two stray ratings would
        # name a genre the user hardly watches.
        frequent = {genre for genre, share in genre_shares(events).items() if share >= 0.1}
        by_genre: dict[str, list[float]] = defaultdict(list)
        for event in events:
            if event.get("rating") is not None:
                for genre in event.get("genres") or []:
                    by_genre[genre].append(event["rating"])
        means = {g: sum(r) / len(r) for g, r in by_genre.items() if len(r) >= 2 and g in frequent}
        if len(means) < 2:
            return None
        best = max(sorted(means), key=means.get)
        worst = min(sorted(means), key=means.get)
        if means[best] - means[worst] < 0.5:
            return "Rates all genres about the same."
        return f"Rates {best} highest ({means[best]:.1f} on average) and {worst} lowest ({means[worst]:.1f})."

    def _titles(self, events: Sequence[dict]) -> str:
        # Highest-rated first, most recent among equals.
        ranked = sorted(enumerate(events), key=lambda ie: (-(ie[1].get("rating") or 0.0), -ie[0]))
        titles = [e["title"] for _, e in ranked[: self.max_titles] if e.get("title")]
        return f"Representative titles: {_join(titles)}." if titles else ""

    def _shift(self, events: Sequence[dict]) -> str | None:
        n_recent = max(3, round(len(events) * self.recent_fraction))
        if len(events) < 2 * n_recent:
            return None
        earlier, recent = genre_shares(events[:-n_recent]), genre_shares(events[-n_recent:])
        genre, share = _ranked(recent)[0]
        if share - earlier.get(genre, 0.0) >= self.shift_threshold:
            return f"Recently shifted toward {genre} ({share:.0%} of the last {n_recent})."
        return "Recent activity matches the long-term taste."
