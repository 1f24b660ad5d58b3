"""The student: item encoder + SASRec body + pooling + next-item head + distillation head, assembled.

User representation (`student_embedding`): final-layer state at the newest position, the
vector SASRec scores items with. Predicted profile (`student_profile_embedding`): the
distillation head applied to the pooled state, mapped back to raw profile space.
"""

from __future__ import annotations

from typing import TypedDict

import torch
from torch import nn

from profile_features.student.body import SasRecBody
from profile_features.student.config import StudentConfig
from profile_features.student.heads import DistillHead, NextItemHead, ProfileTargetTransform
from profile_features.student.items import ItemEncoder
from profile_features.student.pooling import SequencePooling, last_state

__all__ = ["StudentOutput", "StudentModel"]


class StudentOutput(TypedDict):
    """Per-user encodings for a batch of B users."""

    state: torch.Tensor  # [B, H] user representation (newest position, last layer)
    pooled: torch.Tensor  # [B, H] pooled state read by distillation
    profile: torch.Tensor | None  # [B, P] predicted raw-space profile; None without a profile head


class StudentModel(nn.Module):
    """SASRec with an optional profile head.

    Args:
        num_items: Number of real items (indices 1..num_items; 0 is padding).
        profile_dim: Width P of raw profile embeddings; 0 means no profile head.
        cfg: Full student config.
        text_dim: Width D of the items' frozen text embeddings (0: no text view).
        code_sizes: Codes per semantic-ID level (empty: no semantic-ID view).
    """

    def __init__(self, num_items: int, profile_dim: int, cfg: StudentConfig, text_dim: int = 0, code_sizes=()) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.profile_dim = profile_dim
        items = ItemEncoder(num_items, cfg.body.hidden_size, cfg.items, text_dim, code_sizes)
        self.body = SasRecBody(items, cfg.body)
        self.pooling = SequencePooling(cfg.pooling)
        self.head = NextItemHead(items, num_items, cfg.body.hidden_size, cfg.head.tied)
        h = cfg.body.hidden_size
        # Fallback for users with no known item: mean over training users, set by training.
        self.register_buffer("fallback_state", torch.zeros(h))
        if profile_dim > 0:
            kind = cfg.distill.target_transform if cfg.distill.enabled else "center"
            self.target_transform: ProfileTargetTransform | None = ProfileTargetTransform(
                profile_dim, kind, cfg.distill.whiten_dim
            )
            self.distill_head: DistillHead | None = DistillHead(h, self.target_transform.target_dim, cfg.distill)
            self.register_buffer("fallback_profile", torch.zeros(profile_dim))
        else:
            self.target_transform = None
            self.distill_head = None

    @property
    def device(self) -> torch.device:
        return self.body.pos_emb.weight.device

    @property
    def items(self) -> ItemEncoder:
        return self.body.items

    def layers(self, items: torch.Tensor, id_on: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Block outputs, each [B, T, H], for left-padded items [B, T] (id_on: see `ItemEncoder`)."""
        return self.body(items, id_on)

    def next_item_logits(self, states: torch.Tensor) -> torch.Tensor:
        """Args: states [..., H]. Returns [..., num_items]; column j is item index j + 1."""
        return self.head(states)

    def encode(self, items: torch.Tensor) -> StudentOutput:
        """Encode users.

        Args:
            items: [B, T] left-padded item indices, newest last; each row needs >= 1 item.

        Returns:
            `StudentOutput` with state [B, H], pooled [B, H], profile [B, P] or None.
        """
        layers = self.layers(items)
        state = last_state(layers[-1])
        pooled = self.pooling(layers, items)
        profile = None
        if self.distill_head is not None and self.target_transform is not None:
            profile = self.target_transform.inverse(self.distill_head.predict(pooled))
        return StudentOutput(state=state, pooled=pooled, profile=profile)

    def score_items(self, items: torch.Tensor) -> torch.Tensor:
        """Next-item scores [B, num_items] for histories [B, T]."""
        return self.next_item_logits(last_state(self.layers(items)[-1]))
