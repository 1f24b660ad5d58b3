"""Losses: next-item CE (full or sampled softmax), distillation losses and their weighting."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from profile_features.student.config import DistillConfig

__all__ = [
    "next_item_loss",
    "sampled_next_item_loss",
    "neighbour_loss",
    "distill_loss",
    "LossWeighting",
    "CombinedLoss",
    "combine",
]


def next_item_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full-softmax cross-entropy.

    Args:
        logits: [N, num_items] scores; column j is item index j + 1.
        targets: [N] item indices in 1..num_items.

    Returns:
        Scalar mean CE.
    """
    return F.cross_entropy(logits, targets - 1)


def sampled_next_item_loss(
    head,
    states: torch.Tensor,
    targets: torch.Tensor,
    negatives: int | None,
    id_on: torch.Tensor | None = None,
    candidates: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next-item CE against the target and `negatives` uniformly sampled items (shared by the batch).

    With no more candidate items than `negatives` (or `negatives` None) this is the full softmax.
    Otherwise each negative's logit gets + log(C / negatives), the log of 1 / (expected draws of an
    item), so the sampled partition function estimates the full one; a sampled item that is the
    row's own target is masked out (an accidental hit is not a negative).

    Args:
        head: the `NextItemHead` (scores the candidates).
        states: [B, H] positions' states; targets: [B] item indices in 1..N.
        id_on: [N + 1] bool, which items use their ID view (see `ItemEncoder`).
        candidates: [N] bool, the items the softmax runs over (None: all). Training passes the items
            it has seen: an item no history contains is not evidence of dislike, only of newness.
    """
    num_items = head.bias.shape[0]
    pool = None if candidates is None or bool(candidates.all()) else torch.nonzero(candidates).squeeze(1) + 1
    size = num_items if pool is None else len(pool)
    if negatives is None or size <= negatives:
        logits = head(states, id_on)
        if pool is not None:
            logits = logits.masked_fill(~candidates, float("-inf"))
        return next_item_loss(logits, targets)
    draws = torch.randint(0, size, (negatives,), device=states.device)
    sampled = draws + 1 if pool is None else pool[draws]
    negative_logits = head.candidate_logits(states, sampled, id_on) + math.log(size / negatives)
    negative_logits = negative_logits.masked_fill(sampled[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([head.target_logits(states, targets, id_on)[:, None], negative_logits], 1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def neighbour_loss(states: torch.Tensor, teachers: torch.Tensor) -> torch.Tensor:
    """Retrieval-augmented self-distillation: squared distance of unit vectors (= 2 - 2 cos).

    Args:
        states: [B, H] user representations (with gradient).
        teachers: [B, H] mean representation of each user's profile neighbours (no gradient).
    """
    return (F.normalize(states, dim=-1) - F.normalize(teachers, dim=-1)).pow(2).sum(-1).mean()


def distill_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: str,
    temperature: float = 0.1,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distillation loss between predicted and target vectors.

    Args:
        pred: [N, D] student side.
        target: [B, D] profile side (already projected into the same space).
        kind: mse | cosine (1 - cos, mean) | infonce (in-batch, users are each other's negatives).
        temperature: InfoNCE temperature.
        rows: [N] which target row each prediction belongs to; None means row i <-> row i (N = B).
            Several predictions per user (one per position) share that user's target.

    Returns:
        Scalar loss.
    """
    if rows is None:
        rows = torch.arange(len(pred), device=pred.device)
    if kind == "mse":
        return F.mse_loss(pred, target[rows])
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(pred, target[rows], dim=-1)).mean()
    if kind == "infonce":
        logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature
        return F.cross_entropy(logits, rows)
    raise ValueError(f"unknown distillation loss {kind!r}")


@dataclass
class LossWeighting:
    """State of beta between batches (for `first_batch` scaling)."""

    frozen_beta: float | None = None


@dataclass(frozen=True)
class CombinedLoss:
    """One batch's loss parts (floats for logging, `total` keeps the graph)."""

    total: torch.Tensor
    rec: float
    distil: float
    beta: float


def combine(
    l_rec: torch.Tensor,
    l_distil: torch.Tensor | None,
    cfg: DistillConfig,
    state: LossWeighting,
    distill_active: bool,
) -> CombinedLoss:
    """L = alpha * beta * L_distil + (1 - alpha) * L_rec while distilling, else L_rec.

    beta is a constant (no gradient): L_rec / L_distil per batch (`dynamic`), that ratio frozen
    after the first batch (`first_batch`), or `beta_value` (`fixed`); clipped to `beta_max`.
    """
    if l_distil is None or not distill_active:
        return CombinedLoss(
            l_rec, float(l_rec.detach()), float("nan") if l_distil is None else float(l_distil.detach()), 0.0
        )
    ratio = float(l_rec.detach() / l_distil.detach().clamp_min(1e-12))
    if cfg.beta == "dynamic":
        beta = ratio
    elif cfg.beta == "first_batch":
        if state.frozen_beta is None:
            state.frozen_beta = ratio
        beta = state.frozen_beta
    else:
        beta = cfg.beta_value
    if cfg.beta_max is not None:
        beta = min(beta, cfg.beta_max)
    total = cfg.alpha * beta * l_distil + (1.0 - cfg.alpha) * l_rec
    return CombinedLoss(total, float(l_rec.detach()), float(l_distil.detach()), beta)
