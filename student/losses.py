"""Losses: full-softmax next-item CE, distillation losses and their weighting."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from student.config import DistillConfig

__all__ = ["next_item_loss", "distill_loss", "LossWeighting", "CombinedLoss", "combine"]


def next_item_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full-softmax cross-entropy.

    Args:
        logits: [N, num_items] scores; column j is item index j + 1.
        targets: [N] item indices in 1..num_items.

    Returns:
        Scalar mean CE.
    """
    return F.cross_entropy(logits, targets - 1)


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
