"""A deterministic profile writer: no LLM, the default and the fallback generator.

It says only what the item text supports: genres when the catalogue has them, else the
descriptive terms that recur across the user's items (title and description, minus words
common across the catalogue), eras from years, and the titles that name something. A
history whose items carry none of that gets NO_PROFILE (empty text): the embedding job
then writes no vector, so the profile's semantic columns are null rather than a
confident sentence about nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

from profile_features.profiles.base import GeneratedProfile, UserHistory, UserOutcome, event_year
from profile_features.profiles.sanitize import output_problem
from profile_features.profiles.terms import count_terms, item_terms

__all__ = ["NO_PROFILE", "RuleBasedProfileWriter", "genre_shares"]

NO_PROFILE = ""  # the text of a profile with nothing to say


def genre_shares(events: Sequence[dict]) -> Counter:
    """Share of attention per genre over the events that have genres; an event with k genres gives each 1/k."""
    shares: Counter = Counter()
    for event in events:
        genres = event.get("genres") or []
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
    prompt_version = "rule-v2"

    def __init__(
        self,
        max_titles: int = 3,
        recent_fraction: float = 0.2,
        shift_threshold: float = 0.25,
        common_terms: frozenset[str] = frozenset(),
        max_terms: int = 4,
    ):
        """`common_terms`: words too common in the catalogue to describe anyone (terms.common_terms)."""
        self.max_titles = max_titles
        self.recent_fraction = recent_fraction
        self.shift_threshold = shift_threshold
        self.common_terms = frozenset(common_terms)
        self.max_terms = max_terms

    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]:
        return [
            GeneratedProfile(h.user_id, self.describe(h.events), self.name, self.model, self.prompt_version)
            for h in histories
        ]

    def run(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]:
        """One outcome per history, in input order (no calls, nothing rejected)."""
        for index, (history, profile) in enumerate(zip(histories, self.generate(histories))):
            yield UserOutcome(index, history.user_id, history.history_hash, profile)

    def describe(self, events: Sequence[dict]) -> str:
        """The profile text of one history (oldest -> newest)."""
        if not events:
            return NO_PROFILE
        has_genres = any(event.get("genres") for event in events)
        topics = self._genres(events) if has_genres else self._terms(events)
        parts = [topics, self._eras(events)]
        if has_genres:
            parts.append(self._ratings(events))
        parts.append(self._titles(events))
        if has_genres:
            parts.append(self._shift(events))
        sentences = [part for part in parts if part]
        return " ".join(sentences) if sentences else NO_PROFILE

    def _genres(self, events: Sequence[dict]) -> str:
        top = _ranked(genre_shares(events))[:3]
        listed = _join([f"{genre} ({share:.0%})" for genre, share in top])
        return f"Mostly interested in {listed} across {len(events)} interactions."

    def _describing(self, event: dict) -> set[str]:
        return item_terms(event) - self.common_terms

    def _terms(self, events: Sequence[dict]) -> str | None:
        """Terms in at least two of the user's items: with one item nothing recurs, and a
        single item's words are in its title sentence already."""
        counts = count_terms({"title": e.get("title"), "description": e.get("description")} for e in events)
        recurring = [(t, c) for t, c in counts.items() if c >= 2 and t not in self.common_terms]
        if not recurring:
            return None
        top = sorted(recurring, key=lambda tc: (-tc[1], tc[0]))[: self.max_terms]
        listed = _join([f"{term} ({count} of {len(events)})" for term, count in top])
        return f"Items often mention {listed}."

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
        # Highest-rated first, most recent among equals; only titles that name something
        # ("Best amp", not "Nice"), each once, and none the output gate refuses (a title that is
        # markup, a link or an injected instruction would cost the user the whole profile).
        ranked = sorted(enumerate(events), key=lambda ie: (-(ie[1].get("rating") or 0.0), -ie[0]))
        titles = [
            e["title"]
            for _, e in ranked
            if e.get("title") and self._describing({"title": e["title"]}) and output_problem(e["title"]) is None
        ]
        titles = list(dict.fromkeys(titles))[: self.max_titles]
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
