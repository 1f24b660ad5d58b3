"""Pooling of per-position hidden states into one vector per user."""

from __future__ import annotations

import torch
from torch import nn

from profile_features.student.config import PoolingConfig

__all__ = ["SequencePooling", "last_state"]


def last_state(states: torch.Tensor) -> torch.Tensor:
    """State at the newest position. Args: states [B, T, H]. Returns [B, H]."""
    return states[:, -1, :]


class SequencePooling(nn.Module):
    """Mean, last-item or exponential-decay pooling over non-padding positions.

    `each` pools like `last`; training reads every position instead (`for_distillation`).

    Args:
        cfg: Which pooling and which block output (`layer`) it reads.
    """

    def __init__(self, cfg: PoolingConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def select_layer(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Pick the configured block output from `SasRecBody.forward`'s list."""
        return layers[self.cfg.layer]

    def forward(self, layers: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """Pool.

        Args:
            layers: Block outputs, each [B, T, H].
            items: [B, T] item indices (0 = padding), aligned with the states.

        Returns:
            [B, H] pooled user states (zeros for an all-padding row).
        """
        states = self.select_layer(layers)
        if self.cfg.kind in ("last", "each"):
            return last_state(states)
        mask = (items != 0).to(states.dtype)  # [B, T]
        if self.cfg.kind == "exp":
            t = items.shape[1]
            age = torch.arange(t - 1, -1, -1, device=items.device, dtype=states.dtype)
            mask = mask * self.cfg.decay**age
        weights = mask / mask.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.einsum("bt,bth->bh", weights, states)

    def for_distillation(self, layers: list[torch.Tensor], items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The states the distillation loss reads, with the user (row) each belongs to.

        One pooled state per user, or for `each` every non-padding state of the configured layer.

        Returns:
            (states [N, H], rows [N]); N = B when pooled, the count of non-padding positions for `each`.
        """
        if self.cfg.kind != "each":
            return self(layers, items), torch.arange(items.shape[0], device=items.device)
        mask = items != 0
        rows = torch.arange(items.shape[0], device=items.device).unsqueeze(1).expand_as(items)
        return self.select_layer(layers)[mask], rows[mask]
