"""Seeded sample data whose users follow hidden tastes.

Each item belongs to one or two genres, has an era and text written from its genres'
vocabulary; each user has hidden favourite genres and a favourite era, and some users
shift taste late in their history. Interactions are drawn from those tastes, so
semantic features (profile x item text similarity) have something real to find and
tests have a known right answer (`SampleData.user_tastes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from profile_features.config import SampleConfig

__all__ = ["GENRES", "SampleData", "generate_sample"]

# genre -> (title words, description phrases)
GENRES: dict[str, tuple[list[str], list[str]]] = {
    "Action": (
        ["Fury", "Strike", "Bullet", "Chase", "Vengeance"],
        ["explosive car chases", "a lone soldier fights back", "a heist gone wrong"],
    ),
    "Comedy": (
        ["Wedding", "Roommates", "Holiday", "Mixup", "Neighbours"],
        ["a family road trip goes hilariously wrong", "two friends swap jobs", "awkward jokes at a reunion"],
    ),
    "Drama": (
        ["Letters", "Winter", "Silence", "Inheritance", "Harbour"],
        ["a family torn apart by grief", "a teacher changes a student's life", "quiet struggle in a small town"],
    ),
    "Horror": (
        ["Haunting", "Cellar", "Curse", "Shadows", "Ritual"],
        ["a haunted house with a dark secret", "a demon stalks campers", "terrifying screams at midnight"],
    ),
    "Romance": (
        ["Kiss", "Paris", "Heartstrings", "Sunset", "Promise"],
        ["two strangers fall in love", "a summer love affair", "a bittersweet love letter"],
    ),
    "Sci-Fi": (
        ["Nebula", "Android", "Orbit", "Quantum", "Colony"],
        ["astronauts explore a distant planet", "robots rebel against humanity", "time travel paradox in space"],
    ),
    "Documentary": (
        ["Oceans", "Archive", "Frontline", "Wildlife", "Witness"],
        ["real footage of endangered wildlife", "an investigation into a scandal", "interviews with survivors"],
    ),
    "Animation": (
        ["Dragon", "Toybox", "Meadow", "Bunny", "Lantern"],
        ["a cartoon fox learns friendship", "animated toys come to life", "a magical kingdom of talking animals"],
    ),
    "Western": (
        ["Saddle", "Outlaw", "Canyon", "Sheriff", "Frontier"],
        ["cowboys duel at high noon", "a sheriff hunts outlaws across the desert", "a cattle drive on the frontier"],
    ),
    "Musical": (
        ["Melody", "Encore", "Broadway", "Rhythm", "Chorus"],
        ["singing and dancing on Broadway", "a band chases its big break", "show tunes and tap dance"],
    ),
}
ERAS = [(1950, 1969), (1970, 1989), (1990, 2009), (2010, 2024)]
ADJECTIVES = ["Last", "Silent", "Golden", "Broken", "Hidden", "Endless", "Crimson", "Little", "Final", "Wild"]


@dataclass(frozen=True)
class SampleData:
    """Generated tables plus the hidden truth they were drawn from."""

    items: pd.DataFrame  # item_id, title, genres, year, description
    interactions: pd.DataFrame  # user_id, item_id, timestamp (UTC), rating, event_type
    user_tastes: pd.DataFrame  # user_id, top_genre, genre_weights (dict), era, shifted_to


def _make_items(rng: np.random.Generator, n_items: int) -> pd.DataFrame:
    genre_names = list(GENRES)
    rows = []
    for index in range(n_items):
        primary = genre_names[index % len(genre_names)]
        genres = [primary]
        if rng.random() < 0.3:
            genres.append(str(rng.choice([g for g in genre_names if g != primary])))
        era = ERAS[int(rng.integers(len(ERAS)))]
        words, phrases = GENRES[primary]
        title = f"The {rng.choice(ADJECTIVES)} {rng.choice(words)} {index}"
        description = f"{str(rng.choice(phrases)).capitalize()}."
        if len(genres) > 1:
            description += f" Also {rng.choice(GENRES[genres[1]][1])}."
        rows.append(
            {
                "item_id": f"i{index:05d}",
                "title": title,
                "genres": "|".join(genres),
                "year": int(rng.integers(era[0], era[1] + 1)),
                "description": description,
            }
        )
    return pd.DataFrame(rows)


def _era_of(year: int) -> int:
    return next(i for i, (lo, hi) in enumerate(ERAS) if lo <= year <= hi)


def generate_sample(config: SampleConfig = SampleConfig()) -> SampleData:
    """Generate items, interactions and the hidden user tastes, deterministically per seed."""
    rng = np.random.default_rng(config.seed)
    items = _make_items(rng, config.items)
    genre_names = list(GENRES)
    item_genres = items["genres"].str.split("|")
    item_eras = items["year"].map(_era_of).to_numpy()
    popularity = rng.pareto(1.5, size=len(items)) + 1.0
    start = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()

    interactions, tastes = [], []
    for user_index in range(config.users):
        user_id = f"u{user_index:05d}"
        n_fav = int(rng.integers(1, 4))
        favourites = [str(g) for g in rng.choice(genre_names, size=n_fav, replace=False)]
        weights = dict(zip(favourites, np.sort(rng.dirichlet(np.ones(n_fav)))[::-1]))
        era = int(rng.integers(len(ERAS)))
        shifted_to = str(rng.choice([g for g in genre_names if g not in favourites])) if rng.random() < 0.2 else None
        if config.history_lengths == "geometric":
            n_events = int(np.clip(rng.geometric(1.0 / config.mean_interactions), 2, len(items) // 2))
        else:
            n_events = int(np.clip(rng.poisson(config.mean_interactions), 3, len(items) // 2))
        shift_at = int(n_events * 0.7) if shifted_to else n_events

        def item_probs(taste: dict[str, float]) -> np.ndarray:
            affinity = np.array([sum(taste.get(g, 0.0) for g in gs) for gs in item_genres])
            # x ** 1.0 == x exactly, so the default strength reproduces the original sample.
            strength = config.taste_strength
            score = popularity * (0.02 + affinity) ** strength * np.where(item_eras == era, 2.0**strength, 1.0)
            return score / score.sum()

        chosen: list[int] = []
        for phase_taste, count in ((weights, shift_at), ({shifted_to: 1.0} if shifted_to else {}, n_events - shift_at)):
            if count <= 0:
                continue
            probs = item_probs(phase_taste)
            probs[chosen] = 0.0
            probs /= probs.sum()
            chosen.extend(int(i) for i in rng.choice(len(items), size=count, replace=False, p=probs))

        clock = start + rng.uniform(0, config.arrival_days) * 86400
        for position, item_index in enumerate(chosen):
            clock += rng.exponential(config.gap_days) * 86400
            taste = weights if position < shift_at else {shifted_to: 1.0}
            affinity = sum(taste.get(g, 0.0) for g in item_genres[item_index])
            rating = float(np.clip(round(2.5 + 2.5 * affinity + rng.normal(0, 0.7)), 1, 5))
            interactions.append((user_id, items.item_id[item_index], clock, rating, "rating"))
        tastes.append(
            {
                "user_id": user_id,
                "top_genre": favourites[int(np.argmax([weights[g] for g in favourites]))],
                "genre_weights": {g: float(w) for g, w in weights.items()},
                "era": f"{ERAS[era][0]}-{ERAS[era][1]}",
                "shifted_to": shifted_to,
            }
        )

    frame = pd.DataFrame(interactions, columns=["user_id", "item_id", "timestamp", "rating", "event_type"])
    frame["timestamp"] = (
        pd.to_datetime(frame["timestamp"], unit="s", utc=True).dt.floor("s").astype("datetime64[us, UTC]")
    )
    if config.item_text == "short_noisy":
        items = _review_snippet_items(items, np.random.default_rng([config.seed, 1]))
    return SampleData(items=items, interactions=frame, user_tastes=pd.DataFrame(tastes))


# Short, mostly generic review snippets, as product catalogues built from reviews have them.
SNIPPETS = [
    "Nice",
    "Great",
    "Very useful",
    "Works well",
    "Love it",
    "Good value",
    "Not bad",
    "Excellent",
    "As described",
    "Five stars",
    "Does the job",
    "Happy with it",
    "Would buy again",
    "Okay",
    "Perfect",
]
# Hidden category -> product nouns a snippet may name ("Best amp").
PRODUCT_NOUNS: dict[str, list[str]] = {
    "Action": ["amp", "speaker", "subwoofer"],
    "Comedy": ["board game", "card deck", "puzzle"],
    "Drama": ["novel", "memoir", "poetry book"],
    "Horror": ["mask", "costume", "fog machine"],
    "Romance": ["candle", "perfume", "necklace"],
    "Sci-Fi": ["drone", "telescope", "robot kit"],
    "Documentary": ["field guide", "atlas", "camera"],
    "Animation": ["plush toy", "crayon set", "sticker book"],
    "Western": ["saddle", "boots", "lasso"],
    "Musical": ["ukulele", "metronome", "microphone"],
}


def _snippet(rng: np.random.Generator, category: str, signal: float) -> str:
    if rng.random() < signal:
        noun = str(rng.choice(PRODUCT_NOUNS[category]))
        return str(rng.choice([f"Best {noun}", f"Great {noun}", f"{noun.capitalize()} works", f"Nice {noun}"]))
    return str(rng.choice(SNIPPETS))


def _review_snippet_items(items: pd.DataFrame, rng: np.random.Generator, signal: float = 0.3) -> pd.DataFrame:
    """Replace rich item text with review snippets: no genres or year, a title and an optional
    description that name the item's hidden (primary) category with probability `signal` each."""
    categories = items["genres"].str.split("|").str[0]
    titles = [_snippet(rng, c, signal) for c in categories]
    descriptions = [_snippet(rng, c, signal) if rng.random() < 0.5 else "" for c in categories]
    return items.assign(
        title=titles, genres="", year=pd.array([None] * len(items), dtype="Int64"), description=descriptions
    )
