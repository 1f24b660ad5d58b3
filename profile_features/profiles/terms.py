"""Descriptive terms of item text, for profiles of catalogues without genres.

A catalogue described by review snippets ("Nice", "Best amp", "Very useful") has no
genres, but its text still names what items are ("amp"). A term says something about a
user only if it is neither an English function word nor common across the catalogue
("nice", "great" appear in a large share of items and describe none of them), so the
profile job counts, once per snapshot, how many items each term appears in and hands
the writer the terms above `max_share` of the catalogue. That set is small by
construction (at most tokens-per-item / max_share terms), whatever the catalogue size.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pandas as pd

__all__ = ["STOPWORDS", "text_terms", "item_terms", "item_term_rows", "count_terms", "common_threshold", "common_terms"]

STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are aren as at be because been before being below
between both but by can cannot could did didn do does doesn doing don down during each few for from further had
has have having he her here hers herself him himself his how i if in into is isn it its itself just let me more
most my myself no nor not now of off on once only or other ought our ours ourselves out over own same she should
so some such than that the their theirs them themselves then there these they this those through to too under
until up very was wasn we were weren what when where which while who whom why will with won would you your yours
yourself yourselves one two three four five six seven eight nine ten get got use used using make made really
""".split()
)
_TOKEN = re.compile(r"[^\W\d_]{3,}")


def text_terms(text: str | None) -> set[str]:
    """Lower-cased words of three or more letters that are not function words."""
    return {t for t in _TOKEN.findall((text or "").lower()) if t not in STOPWORDS}


def item_terms(event: dict) -> set[str]:
    """The terms of an item's title and description."""
    return text_terms(event.get("title")) | text_terms(event.get("description"))


def item_term_rows(items: pd.DataFrame) -> pd.DataFrame:
    """One (term) row per distinct term of each item (title + description); for counting items per term."""
    terms = [
        t
        for row in items.itertuples(index=False)
        for t in item_terms({"title": row.title, "description": row.description})
    ]
    return pd.DataFrame({"term": pd.Series(terms, dtype=object)})


def common_threshold(items: int, max_share: float = 0.02, min_items: int = 3) -> float:
    """A term in more items than this is common: `max_share` of the catalogue, and at least `min_items`."""
    return max(min_items, max_share * items)


def common_terms(term_counts: Counter | dict, items: int, max_share: float = 0.02) -> frozenset[str]:
    """Terms whose item count (of `items` items) is above `common_threshold`."""
    threshold = common_threshold(items, max_share)
    return frozenset(term for term, count in term_counts.items() if count > threshold)


def count_terms(events: Iterable[dict]) -> Counter:
    """Items per term over `events` (each event counts a term once)."""
    counts: Counter = Counter()
    for event in events:
        counts.update(item_terms(event))
    return counts
