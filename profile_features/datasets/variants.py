"""Named datasets for evaluation, including hard variants nobody tuned for.

The plugin's defaults must hold on data that looks nothing like the sample. These
builders make such data reproducibly from what is available here:

- `ml-100k-sparse`: MovieLens 100K with the popular head thinned out and every user cut
  to a few interactions (long-tail items, sparse users);
- `sample-noisy`: the generator with weak tastes, users arriving over years with a
  handful of interactions each, and items described only by short review snippets.

`write_csv_pair` writes any of them the way a user hands data over (two CSV files), so
`profile-features evaluate --config` runs on them exactly as on the user's own data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.config import InputsConfig, SampleConfig, TableInput

__all__ = ["DATASETS", "NOISY_SAMPLE", "SMALL_SHOP", "sparsify", "load_dataset", "write_csv_pair"]

DATASETS = ("sample", "sample-noisy", "sample-small-shop", "ml-100k", "ml-100k-sparse")
NOISY_SAMPLE = SampleConfig(
    users=2500,
    items=1500,
    mean_interactions=6,
    seed=11,
    taste_strength=0.35,
    item_text="short_noisy",
    history_lengths="geometric",
    arrival_days=900,
    gap_days=60,
)

# A 300-user shop: ~15 purchases a user (most fewer), weaker tastes, users arriving over a year; the size at
# which the old evaluate split left 4 validation users.
SMALL_SHOP = SampleConfig(
    users=300,
    items=400,
    mean_interactions=15,
    seed=23,
    taste_strength=0.6,
    history_lengths="geometric",
    arrival_days=365,
    gap_days=20,
)


def sparsify(
    interactions: pd.DataFrame,
    mean_history: float = 6.0,
    head_fraction: float = 0.1,
    head_keep: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Sparse users and a long tail from a dense interaction log.

    Interactions with the `head_fraction` most popular items are kept with probability
    `head_keep`; then each user keeps one random interaction of every week they were active
    (a user who came back stays a returning user, only sparser), topped up at random to a
    geometric number of interactions with mean `mean_history`.
    """
    rng = np.random.default_rng(seed)
    counts = interactions.item_id.value_counts()
    head = set(counts.index[: max(1, int(len(counts) * head_fraction))])
    keep = ~interactions.item_id.isin(head) | (rng.random(len(interactions)) < head_keep)
    thinned = interactions[keep].sort_values(["user_id", "timestamp"], kind="stable")
    parts = []
    for _, group in thinned.groupby("user_id", sort=True):
        weeks = group.timestamp.dt.tz_convert(None).dt.to_period("W").to_numpy()
        order = rng.permutation(len(group))
        first_of_week = order[~pd.Series(weeks[order]).duplicated().to_numpy()]
        rest = np.setdiff1d(order, first_of_week, assume_unique=True)
        top_up = max(0, min(len(group), int(rng.geometric(1.0 / mean_history))) - len(first_of_week))
        chosen = np.concatenate([first_of_week, rng.permutation(rest)[:top_up]])
        parts.append(group.iloc[np.sort(chosen)])
    return pd.concat(parts).sort_values("timestamp", kind="stable").reset_index(drop=True)


def load_dataset(
    name: str, ml100k_path: str | Path | None = None, sample: SampleConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items) of a named dataset (see DATASETS)."""
    from profile_features.datasets.movielens import load_ml100k
    from profile_features.datasets.sample import generate_sample

    named = {"sample": SampleConfig(), "sample-noisy": NOISY_SAMPLE, "sample-small-shop": SMALL_SHOP}
    if name in named:
        data = generate_sample(sample or named[name])
        return data.interactions, data.items
    if name in ("ml-100k", "ml-100k-sparse"):
        if ml100k_path is None:
            raise ValueError(f"{name} needs the path of a MovieLens ml-100k folder")
        interactions, items = load_ml100k(ml100k_path)
        return (sparsify(interactions) if name == "ml-100k-sparse" else interactions), items
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def write_csv_pair(interactions: pd.DataFrame, items: pd.DataFrame, out_dir: str | Path) -> InputsConfig:
    """Write `interactions.csv` (timestamps as ISO-8601) and `items.csv`; returns the inputs config."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = interactions.copy()
    if pd.api.types.is_datetime64_any_dtype(frame["timestamp"]):
        frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(out / "interactions.csv", index=False)
    items.to_csv(out / "items.csv", index=False)
    return InputsConfig(
        interactions=TableInput(path=str(out / "interactions.csv")), items=TableInput(path=str(out / "items.csv"))
    )
