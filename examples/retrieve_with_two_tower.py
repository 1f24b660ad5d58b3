"""A two-tower retriever on the `two_tower` feature service: train on history, serve from the online store.

    python examples/retrieve_with_two_tower.py --repo feature_repo     # after `make demo`

1. Entity rows with timestamps: each interaction after the first feature snapshot is a (user, item, time)
   positive; `get_historical_features(features=<two_tower>)` gives both sides' vectors as of that time.
2. No training at all: the profile x item-text cosine (both are sentence embeddings in one space).
3. A tiny tower per side (one linear layer over the concatenated vectors, L2-normalised), trained with
   in-batch softmax; early stopping on the last 20% of the time range.
4. Serving: the user's vectors and every item's from `get_online_features`, one matrix product, top 10.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.feast import load_feast_settings, service_columns

USER_VECTORS = ("profile_embedding", "student_embedding", "student_profile_embedding")


@dataclass(frozen=True)
class TowerRun:
    user_columns: list[str]
    item_columns: list[str]
    best_epoch: int
    valid_loss: float
    user_id: str
    untrained_top: pd.DataFrame  # item_id, score: profile x item-text cosine
    top: pd.DataFrame  # item_id, score: the trained towers


def stack(frame: pd.DataFrame, columns: list[str], widths: dict[str, int]) -> np.ndarray:
    """rows x sum(widths) float32: the listed vector columns side by side; zeros where a vector is missing."""
    blocks = [np.stack([np.zeros(widths[c]) if v is None else np.asarray(v) for v in frame[c]]) for c in columns]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def cosine(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    normalise = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)  # noqa: E731
    return normalise(users) @ normalise(items).T


def train_towers(users, items, valid_users, valid_items, epochs=50, patience=5, seed=0):
    """Two linear towers -> 32-d unit vectors; in-batch softmax (temperature 0.1); keeps the best epoch."""
    import torch

    torch.manual_seed(seed)
    towers = torch.nn.ModuleList([torch.nn.Linear(users.shape[1], 32), torch.nn.Linear(items.shape[1], 32)])
    optimiser = torch.optim.Adam(towers.parameters(), lr=1e-2)

    def loss_of(u, i):
        u = torch.nn.functional.normalize(towers[0](torch.from_numpy(u)), dim=1)
        i = torch.nn.functional.normalize(towers[1](torch.from_numpy(i)), dim=1)
        return torch.nn.functional.cross_entropy(u @ i.T / 0.1, torch.arange(len(u)))

    best, best_epoch, state = float("inf"), 0, None
    for epoch in range(1, epochs + 1):
        for batch in np.array_split(
            np.random.default_rng(seed + epoch).permutation(len(users)), max(1, len(users) // 128)
        ):
            optimiser.zero_grad()
            loss_of(users[batch], items[batch]).backward()
            optimiser.step()
        with torch.no_grad():
            valid = float(loss_of(valid_users, valid_items))
        if valid < best:
            best, best_epoch, state = valid, epoch, [p.detach().clone() for p in towers.parameters()]
        elif epoch - best_epoch >= patience:
            break
    with torch.no_grad():
        for parameter, kept in zip(towers.parameters(), state):
            parameter.copy_(kept)
    return towers, best_epoch, best


def main(argv=None) -> TowerRun:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("feature_repo"), help="applied, materialized Feast repo")
    parser.add_argument("--epochs", type=int, default=50, help="at most; early-stopped on the validation loss")
    args = parser.parse_args(argv)
    import torch
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(args.repo))
    data_dir = load_feast_settings(args.repo / "profile_features.yaml").data_dir
    interactions = pd.read_parquet(f"{data_dir}/validated/interactions", columns=["user_id", "item_id", "timestamp"])
    first_snapshot = pd.read_parquet(f"{data_dir}/user_stats", columns=["event_timestamp"]).event_timestamp.min()

    # 1. Positives -> both sides' vectors as of each interaction.
    service = store.get_feature_service("two_tower")
    user_columns = [c for c in service_columns(service) if c in USER_VECTORS]
    item_columns = [c for c in service_columns(service) if c not in USER_VECTORS]
    rows = interactions[interactions.timestamp >= first_snapshot].rename(columns={"timestamp": "event_timestamp"})
    pairs = store.get_historical_features(entity_df=rows, features=service).to_df().sort_values("event_timestamp")
    pairs = pairs[pairs.profile_embedding.notna() & pairs.item_text_embedding.notna()]
    # A column no training pair has cannot be learnt (the student that shipped the popularity prior serves no
    # item vectors): leave it out of both towers, also at serving time.
    absent = [c for c in user_columns + item_columns if not pairs[c].notna().any()]
    if absent:
        print(f"left out, no training pair has them: {', '.join(absent)}")
    user_columns = [c for c in user_columns if c not in absent]
    item_columns = [c for c in item_columns if c not in absent]
    split = int(0.8 * len(pairs))
    widths = {c: len(next(v for v in pairs[c] if v is not None)) for c in user_columns + item_columns}
    users, items = stack(pairs, user_columns, widths), stack(pairs, item_columns, widths)

    # 3. The towers (2 comes at serving time: it needs no training).
    towers, best_epoch, valid_loss = train_towers(
        users[:split], items[:split], users[split:], items[split:], epochs=args.epochs
    )
    print(f"trained on {split} pairs, best epoch {best_epoch}, validation loss {valid_loss:.4f}")

    # 4. Serving: one online read per side, then a matrix product over the unseen catalogue.
    user_id = interactions.user_id.value_counts().index[0]
    candidates = sorted(set(interactions.item_id) - set(interactions.item_id[interactions.user_id == user_id]))
    refs = {p.name: [f"{p.name}:{f.name}" for f in p.features] for p in service.feature_view_projections}
    user_refs = [ref for refs_ in refs.values() for ref in refs_ if ref.split(":")[1] in user_columns]
    item_refs = [ref for refs_ in refs.values() for ref in refs_ if ref.split(":")[1] in item_columns]
    user = store.get_online_features(features=user_refs, entity_rows=[{"user_id": user_id}]).to_df()
    catalogue = store.get_online_features(features=item_refs, entity_rows=[{"item_id": i} for i in candidates]).to_df()
    user_vector, item_matrix = stack(user, user_columns, widths), stack(catalogue, item_columns, widths)
    untrained = cosine(stack(user, ["profile_embedding"], widths), stack(catalogue, ["item_text_embedding"], widths))[0]
    with torch.no_grad():
        u = torch.nn.functional.normalize(towers[0](torch.from_numpy(user_vector)), dim=1)
        i = torch.nn.functional.normalize(towers[1](torch.from_numpy(item_matrix)), dim=1)
        trained = (u @ i.T).numpy()[0]

    def top(scores):
        return (
            pd.DataFrame({"item_id": catalogue.item_id, "score": scores}).nlargest(10, "score").reset_index(drop=True)
        )

    print(f"top items for {user_id} (profile x item text, untrained):\n{top(untrained).to_string(index=False)}")
    print(f"top items for {user_id} (two towers):\n{top(trained).to_string(index=False)}")
    return TowerRun(user_columns, item_columns, best_epoch, valid_loss, user_id, top(untrained), top(trained))


if __name__ == "__main__":
    main(sys.argv[1:])
