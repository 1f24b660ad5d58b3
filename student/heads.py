"""Heads on top of the body: next-item scores, profile targets and the distillation head."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from profile_features.student.config import DistillConfig
from profile_features.student.items import ItemEncoder

__all__ = ["NextItemHead", "ProfileMoments", "ProfileTargetTransform", "DistillHead", "readout_moments"]


class NextItemHead(nn.Module):
    """Next-item scores over all real items: state x item vector + an item bias.

    Args:
        items: The body's item encoder (scores with it when `tied`, as SASRec does).
        num_items: Number of real items (index 1..num_items).
        hidden_size: H.
        tied: Score with the input item vectors instead of a separate matrix.

    `id_on` ([N + 1] bool, default: the items training saw) says which items use their ID view;
    the others are scored by their semantic views alone. Their bias cannot be their own either (an
    unseen item has no trained one): with semantic views it is a learned new-item bias plus a learned
    direction read off the item's vector (content that looks popular), trained on the items whose ID
    view a batch hides, so new items take a path training has used.
    """

    def __init__(self, items: ItemEncoder, num_items: int, hidden_size: int, tied: bool) -> None:
        super().__init__()
        self.tied = tied
        self._items = [items]  # not registered twice: the body owns it
        self.weight = None if tied else nn.Parameter(torch.randn(num_items, hidden_size) * hidden_size**-0.5)
        self.bias = nn.Parameter(torch.zeros(num_items))
        self.content_bias = items.semantic
        if self.content_bias:
            self.new_bias = nn.Parameter(torch.zeros(()))
            self.new_direction = nn.Parameter(torch.zeros(hidden_size))
        # Weight of the personal term (state x item embedding): 1, or 0 once the head falls back
        # to ranking by popularity. A buffer: saved with the checkpoint, never trained.
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def rank_by_popularity(self, counts: torch.Tensor) -> None:
        """Score every user's items by log(1 + training count) [N] alone: the most-popular ranking."""
        self.bias.copy_(torch.log1p(counts.to(self.bias)))
        if self.content_bias:  # an item without a count has log(1 + 0) = 0, whatever its content
            self.new_bias.zero_()
            self.new_direction.zero_()
        self.scale.zero_()

    def item_matrix(self, id_on: torch.Tensor | None = None) -> torch.Tensor:
        """[N, H] output vectors of real items (padding row excluded)."""
        return self._items[0].table(id_on)[1:] if self.tied else self.weight

    def _vectors(self, items: torch.Tensor, id_on: torch.Tensor | None) -> torch.Tensor:
        return self._items[0](items, id_on) if self.tied else self.weight[items - 1]

    def item_bias(self, items: torch.Tensor, vectors: torch.Tensor, id_on: torch.Tensor | None) -> torch.Tensor:
        """Bias of `items` ([...] in 1..N) whose vectors are `vectors` ([..., H])."""
        own = self.bias[items - 1]
        if not self.content_bias:
            return own
        on = (self._items[0].seen if id_on is None else id_on)[items]
        return torch.where(on, own, self.new_bias + vectors @ self.new_direction)

    def content_item_bias(self, vectors: torch.Tensor) -> torch.Tensor:
        """Bias of items known by content alone (new since training). Args: vectors [M, H]. Returns [M]."""
        if not self.content_bias:
            raise ValueError("an ID-only head has no bias for items outside its index")
        return self.new_bias + vectors @ self.new_direction

    def forward(self, states: torch.Tensor, id_on: torch.Tensor | None = None) -> torch.Tensor:
        """Args: states [..., H]. Returns logits [..., N]; column j is item index j + 1."""
        matrix = self.item_matrix(id_on)
        items = torch.arange(1, matrix.shape[0] + 1, device=matrix.device)
        return self.scale * (states @ matrix.T) + self.item_bias(items, matrix, id_on)

    def candidate_logits(
        self, states: torch.Tensor, items: torch.Tensor, id_on: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores of some items only. Args: states [B, H], items [C] in 1..N. Returns [B, C]."""
        vectors = self._vectors(items, id_on)
        return self.scale * (states @ vectors.T) + self.item_bias(items, vectors, id_on)

    def target_logits(self, states: torch.Tensor, targets: torch.Tensor, id_on: torch.Tensor | None = None):
        """Each row's score of its own item. Args: states [B, H], targets [B] in 1..N. Returns [B]."""
        vectors = self._vectors(targets, id_on)
        return self.scale * (states * vectors).sum(-1) + self.item_bias(targets, vectors, id_on)


class ProfileMoments:
    """Count, mean and scatter matrix (sum of outer products of deviations) of profile rows, merged
    chunk by chunk (Chan et al.'s pairwise update), so a transform fits without holding every profile."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.n = 0
        self.mean = np.zeros(dim)
        self.scatter = np.zeros((dim, dim))

    def add(self, rows: np.ndarray) -> "ProfileMoments":
        x = np.asarray(rows, dtype=np.float64).reshape(-1, self.dim)
        if not len(x):
            return self
        n_b, mean_b = len(x), x.mean(0)
        centred = x - mean_b
        delta, n = mean_b - self.mean, self.n + n_b
        self.scatter += centred.T @ centred + np.outer(delta, delta) * (self.n * n_b / n)
        self.mean = self.mean + delta * (n_b / n)
        self.n = n
        return self


class ProfileTargetTransform(nn.Module):
    """Affine map of raw profile embeddings into the distillation target space, and back.

    Stored as buffers so a checkpoint carries it. t = (x - mean) @ proj; x = t @ inv + mean.

    Args:
        profile_dim: P, width of the raw profile embedding.
        kind: none | center | standardize | whiten.
        whiten_dim: K for whitening (default P, capped at the rank of the data).
    """

    def __init__(self, profile_dim: int, kind: str, whiten_dim: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        k = profile_dim if kind != "whiten" else min(whiten_dim or profile_dim, profile_dim)
        self.register_buffer("mean", torch.zeros(profile_dim))
        self.register_buffer("proj", torch.eye(profile_dim)[:, :k].clone())
        self.register_buffer("inv", torch.eye(profile_dim)[:k, :].clone())

    @property
    def target_dim(self) -> int:
        return int(self.proj.shape[1])

    def fit(self, profiles: np.ndarray) -> "ProfileTargetTransform":
        """Fit on raw profiles [U, P] of training users (never on evaluation data)."""
        return self.fit_moments(ProfileMoments(np.asarray(profiles).shape[1]).add(profiles))

    def fit_moments(self, moments: "ProfileMoments") -> "ProfileTargetTransform":
        """Fit from the moments of the training users' raw profiles (accumulated chunk by chunk)."""
        p = moments.dim
        mean = moments.mean if self.kind != "none" else np.zeros(p)
        proj, inv = np.eye(p), np.eye(p)
        if self.kind == "standardize":
            std = np.sqrt(np.diag(moments.scatter) / moments.n) + 1e-6
            proj, inv = np.diag(1 / std), np.diag(std)
        elif self.kind == "whiten":
            cov = moments.scatter / max(moments.n - 1, 1) + 1e-6 * np.eye(p)
            vals, vecs = np.linalg.eigh(cov)
            order = np.argsort(vals)[::-1][: self.target_dim]
            vals, vecs = vals[order], vecs[:, order]
            proj = vecs / np.sqrt(vals)  # [P, K]
            inv = (vecs * np.sqrt(vals)).T  # [K, P]
        if self.kind != "whiten":
            proj, inv = proj[:, : self.target_dim], inv[: self.target_dim]
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.proj.copy_(torch.as_tensor(proj, dtype=torch.float32))
        self.inv.copy_(torch.as_tensor(inv, dtype=torch.float32))
        return self

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Args: raw [B, P]. Returns targets [B, K]."""
        return (raw - self.mean) @ self.proj

    def inverse(self, target: torch.Tensor) -> torch.Tensor:
        """Args: target [B, K]. Returns raw-space profiles [B, P]."""
        return target @ self.inv + self.mean


class DistillHead(nn.Module):
    """Links the pooled student state [B, H] with the profile target space [B, K].

    hidden_to_profile: `to_profile` (H -> K) is trained by the distillation loss.
    profile_to_hidden (published): `to_hidden` (K -> H) projects targets into hidden space and
    is trained jointly.
    In both cases (and for a plain student) the served prediction comes from `readout`
    (H -> K), fitted after training by ridge regression on training users (`fit_readout`), so
    it is an MSE-calibrated estimate even when the training loss was scale-free (cosine, InfoNCE).
    """

    def __init__(self, hidden_size: int, target_dim: int, cfg: DistillConfig) -> None:
        super().__init__()
        self.direction = cfg.direction
        published = cfg.direction == "profile_to_hidden"
        self.to_profile = None if published else nn.Linear(hidden_size, target_dim)
        self.to_hidden = nn.Linear(target_dim, hidden_size) if published else None
        self.readout = nn.Linear(hidden_size, target_dim)

    def pair(self, pooled: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, target), both [B, D], in the space where the distillation loss is measured."""
        if self.to_hidden is not None:
            return pooled, self.to_hidden(target)
        return self.to_profile(pooled), target

    def predict(self, pooled: torch.Tensor) -> torch.Tensor:
        """Predicted profile target [B, K] for pooled states [B, H]."""
        return self.readout(pooled)

    @torch.no_grad()
    def fit_readout(self, pooled: torch.Tensor, target: torch.Tensor, ridge: float) -> None:
        """Closed-form ridge regression target ~ pooled, written into `readout`.

        Args:
            pooled: [U, H] pooled training-user states.
            target: [U, K] their transformed profiles.
            ridge: L2 penalty (intercept not penalised).
        """
        self.fit_readout_moments(*readout_moments(pooled, target), ridge)

    @torch.no_grad()
    def fit_readout_moments(self, xtx: torch.Tensor, xty: torch.Tensor, ridge: float) -> None:
        """`fit_readout` from sums of `readout_moments` over chunks of users."""
        reg = ridge * torch.eye(xtx.shape[0], dtype=torch.float64, device=xtx.device)
        reg[-1, -1] = 0.0
        w = torch.linalg.solve(xtx + reg, xty)  # [H+1, K]
        self.readout.weight.copy_(w[:-1].T.float())
        self.readout.bias.copy_(w[-1].float())


def readout_moments(pooled: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X^T X, X^T Y) in float64 of the ridge readout, X = [pooled, 1]: they add up over chunks."""
    ones = torch.ones(len(pooled), 1, dtype=torch.float64, device=pooled.device)
    x = torch.cat([pooled.double(), ones], 1)
    return x.T @ x, x.T @ target.double()
