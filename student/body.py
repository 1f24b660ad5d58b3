"""SASRec sequence body: item vectors + position embeddings and causal transformer blocks.

Item vectors come from an `ItemEncoder` (student.items): the ID embedding alone in plain
SASRec, fused with the text and semantic-ID views when those are on.

Sequences are left-padded with item index 0 (the padding index), newest item last, so the
user representation for next-item prediction is always the state at position -1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from profile_features.student.config import BodyConfig
from profile_features.student.items import ItemEncoder

__all__ = ["CausalSelfAttention", "SasRecBlock", "SasRecBody"]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t that are not padding."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(hidden_size, hidden_size)
        self.kv = nn.Linear(hidden_size, 2 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Attend.

        Args:
            query: [B, T, H] normalised states (SASRec uses LN(x) as the query only).
            keys: [B, T, H] un-normalised states used for keys and values.
            allowed: [B, 1, T, T] bool, True where query t may attend to key s.

        Returns:
            [B, T, H] attention output.
        """
        b, t, h = query.shape
        d = h // self.num_heads
        q = self.q(query).view(b, t, self.num_heads, d).transpose(1, 2)
        k, v = self.kv(keys).view(b, t, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        return self.out(out.transpose(1, 2).reshape(b, t, h))


class SasRecBlock(nn.Module):
    """One SASRec block: pre-LN attention with residual, then a point-wise feed-forward net."""

    def __init__(self, cfg: BodyConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.attn_norm = nn.LayerNorm(h, eps=1e-8)
        self.attn = CausalSelfAttention(h, cfg.num_heads, cfg.dropout)
        self.ffn_norm = nn.LayerNorm(h, eps=1e-8)
        self.ffn = nn.Sequential(
            nn.Linear(h, h), nn.Dropout(cfg.dropout), nn.ReLU(), nn.Linear(h, h), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Args: x [B, T, H]; allowed [B, 1, T, T]; keep [B, T, 1] (0 at padding). Returns [B, T, H]."""
        q = self.attn_norm(x)
        x = q + self.attn(q, x, allowed)
        y = self.ffn_norm(x)
        x = y + self.ffn(y)
        return x * keep


class SasRecBody(nn.Module):
    """Item vectors plus a stack of causal blocks.

    Args:
        items: The item encoder (rows 0 = padding .. num_items); the next-item head scores with it too.
        cfg: Body hyper-parameters.
    """

    def __init__(self, items: ItemEncoder, cfg: BodyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.items = items
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden_size)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(SasRecBlock(cfg) for _ in range(cfg.num_blocks))
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=1e-8)

    def forward(self, items: torch.Tensor, id_on: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Encode left-padded item sequences.

        Args:
            items: [B, T] long item indices, 0 = padding, T <= max_len, newest last.
            id_on: [N + 1] bool, which items use their ID view (default: those training saw).

        Returns:
            One [B, T, H] tensor per block; the last one passes through the final LayerNorm.
            Padding positions are zero in every layer.
        """
        b, t = items.shape
        if t > self.cfg.max_len:
            items = items[:, -self.cfg.max_len :]
            t = self.cfg.max_len
        keep = (items != 0).unsqueeze(-1).to(self.pos_emb.weight.dtype)
        # Positions count back from the newest item, so padding a batch to any width T
        # gives the same states for the real positions.
        positions = torch.arange(self.cfg.max_len - t, self.cfg.max_len, device=items.device)
        x = self.items(items, id_on) * math.sqrt(self.cfg.hidden_size) + self.pos_emb(positions)
        x = self.emb_dropout(x) * keep
        causal = torch.ones(t, t, dtype=torch.bool, device=items.device).tril()
        allowed = causal.unsqueeze(0) & (items != 0).unsqueeze(1)  # [B, T(query), T(key)]
        # A padding query has no allowed key; letting every position see itself keeps
        # the softmax defined (those rows are zeroed by `keep` anyway).
        allowed = (allowed | torch.eye(t, dtype=torch.bool, device=items.device)).unsqueeze(1)
        layers: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, keep)
            layers.append(self.final_norm(x) * keep if i == len(self.blocks) - 1 else x)
        return layers
