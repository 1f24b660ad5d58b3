"""Loader for MovieLens ml-100k's original files (u.data, u.item).

The data set is never copied into this repository (its licence forbids
redistribution); point `load_ml100k` at a local copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

__all__ = ["ML100K_GENRES", "load_ml100k"]

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def load_ml100k(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ml-100k into the pipeline's input shape.

    Returns:
        (interactions, items): interactions with user_id, item_id (strings), timestamp
        (UTC), rating, event_type="rating"; items with item_id, title (year stripped),
        genres ("|"-joined), year (release year, may be null) and an empty description.
    """
    root = Path(path)
    for name in ("u.data", "u.item"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name}: not found; expected MovieLens ml-100k files in {root}")
    ratings = pd.read_csv(root / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    interactions = pd.DataFrame(
        {
            "user_id": ratings["user_id"].astype(str),
            "item_id": ratings["item_id"].astype(str),
            "timestamp": pd.to_datetime(ratings["timestamp"], unit="s", utc=True).astype("datetime64[us, UTC]"),
            "rating": ratings["rating"].astype(float),
            "event_type": "rating",
        }
    )
    columns = ["item_id", "raw_title", "release_date", "video_release_date", "url", *ML100K_GENRES]
    raw = pd.read_csv(root / "u.item", sep="|", names=columns, encoding="latin-1")
    flags = raw[ML100K_GENRES].to_numpy().astype(bool)
    genres = ["|".join(g for g, on in zip(ML100K_GENRES, row) if on and g != "unknown") for row in flags]
    year = raw["raw_title"].str.extract(_YEAR)[0].astype("Int64")
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"].astype(str),
            "title": raw["raw_title"].str.replace(_YEAR, "", regex=True).str.strip(),
            "genres": genres,
            "year": year,
            "description": "",
        }
    )
    return interactions, items
