"""Retrieval-augmented self-distillation (LLM-ESR): neighbours by LLM profile, teachers from the model.

For each user with a profile, `profile_neighbours` finds the k users of the same chunk whose centred
profile embeddings are most similar (cosine). `NeighbourTeacher` holds, for one chunk, the model's
own representation of every user that is someone's neighbour (taken once per chunk pass, without
gradient); `teachers(rows)` gives each row's mean neighbour representation, the target that
`losses.neighbour_loss` pulls the row's representation toward. Memory is one chunk, whatever the
number of users.
"""

from __future__ import annotations

import numpy as np
import torch

from profile_features.student.data import pad_left
from profile_features.student.sources import UserChunk

__all__ = ["profile_neighbours", "NeighbourTeacher"]


def profile_neighbours(profiles: np.ndarray, has_profile: np.ndarray, k: int, mean: np.ndarray | None = None):
    """[n, k] int64 row numbers of each row's most similar other rows (-1 where there are fewer).

    Args:
        profiles: [n, P] raw profile embeddings (rows without a profile are ignored).
        has_profile: [n] bool.
        k: neighbours per row.
        mean: [P] the mean profile to centre with (sentence vectors share a large common direction,
            which would make everyone everyone's neighbour); default: the mean of these rows.
    """
    n = len(has_profile)
    out = np.full((n, k), -1, dtype=np.int64)
    rows = np.flatnonzero(has_profile)
    if len(rows) < 2:
        return out
    x = profiles[rows].astype(np.float32)
    x = x - (x.mean(0) if mean is None else np.asarray(mean, dtype=np.float32))
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    sims = torch.as_tensor(x) @ torch.as_tensor(x).T
    sims.fill_diagonal_(-float("inf"))
    take = min(k, len(rows) - 1)
    best = torch.topk(sims, take, dim=1).indices.numpy()
    out[rows, :take] = rows[best]
    return out


class NeighbourTeacher:
    """Mean neighbour representations for the rows of one chunk.

    Args:
        model: the student (its `encode` gives the representation: the newest position's state).
        chunk: the chunk's users.
        neighbours: [n, k] from `profile_neighbours` (-1 = none).
        batch_size: users per no-grad forward pass.
    """

    def __init__(self, model, chunk: UserChunk, neighbours: np.ndarray, batch_size: int = 256) -> None:
        self.neighbours = neighbours
        needed = np.unique(neighbours[neighbours >= 0])
        h = model.cfg.body.hidden_size
        self.bank = torch.zeros(len(chunk.sequences), h, device=model.device)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            max_len = model.cfg.body.max_len
            for start in range(0, len(needed), batch_size):
                idx = [i for i in needed[start : start + batch_size] if chunk.sequences[i]]
                if idx:
                    items = pad_left([chunk.sequences[i] for i in idx], max_len).to(model.device)
                    self.bank[torch.as_tensor(idx, device=model.device)] = model.encode(items)["state"]
        model.train(was_training)

    def teachers(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets [B, H], has [B] bool) for chunk rows `rows`; rows without a neighbour have has False."""
        nbrs = torch.as_tensor(self.neighbours[rows], device=self.bank.device)  # [B, k]
        valid = (nbrs >= 0).to(self.bank.dtype)
        summed = (self.bank[nbrs.clamp_min(0)] * valid[..., None]).sum(1)
        count = valid.sum(1)
        return summed / count.clamp_min(1)[:, None], count > 0
