"""Item representations: ID embedding, adapter over the frozen text embedding, semantic-ID codes.

`ItemFeatures` holds the content of an `ItemIndex`'s items as the pipeline computed it (the
embedding job's text vectors, the semantic job's codes; never recomputed here). `ItemEncoder`
turns an item index into one vector of width H from the views `ItemViewsConfig` enables:

    id view      e_id[i]                       (trained; hidden where `id_on` is False)
    text view    adapter((text[i] - mean) / s)  (text frozen; adapter trained)
    sid view     sum_l code_emb_l[codes[i, l]]  (items sharing a code share that row)

fused by `sum`, `gated` (g * id + (1 - g) * semantic, g = sigmoid(W [id; semantic])) or
`concat` (W [id; text; sid]). An item whose ID view is off (never seen in training, or dropped
for the batch) is its semantic views alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from profile_features.student.config import ItemViewsConfig
from profile_features.student.data import ItemIndex

__all__ = ["ItemFeatures", "ItemContent", "ItemEncoder", "item_features_from_frames"]


@dataclass(frozen=True)
class ItemFeatures:
    """Content of the N items of an `ItemIndex` (row j is item index j + 1).

    Attributes:
        text: [N, D] float32 frozen text embeddings (zeros where an item has none), or None.
        codes: [N, L] int64 semantic-ID codes, code c of level l in 0..code_sizes[l] - 1, -1 where
            an item has none; or None.
        code_sizes: K_l per level (empty without codes).
        text_encoder: provenance of `text` (the embedding job's encoder name).
        sid_transform_id: provenance of `codes` (the fitted semantic-ID transform).
    """

    text: np.ndarray | None = None
    codes: np.ndarray | None = None
    code_sizes: tuple[int, ...] = ()
    text_encoder: str | None = None
    sid_transform_id: str | None = None

    @property
    def text_dim(self) -> int:
        return 0 if self.text is None else int(self.text.shape[1])

    @property
    def provenance(self) -> dict:
        return {
            "text_encoder": self.text_encoder,
            "text_dim": self.text_dim,
            "sid_transform_id": self.sid_transform_id,
            "code_sizes": list(self.code_sizes),
        }


def item_features_from_frames(
    item_index: ItemIndex,
    text: pd.DataFrame | None = None,
    codes: pd.DataFrame | None = None,
    code_sizes: tuple[int, ...] = (),
    text_encoder: str | None = None,
    sid_transform_id: str | None = None,
) -> ItemFeatures:
    """Align per-item tables with `item_index`.

    Args:
        text: `item_id`, `item_text_embedding` (list of float; null where missing).
        codes: `item_id`, `item_sid_0` .. `item_sid_{L-1}` (int; -1 or null where missing).
        code_sizes: number of codes per level (the transform's).

    Items of the index missing from a table get zeros / -1; rows for items outside the index are
    ignored (the student cannot embed items it has no index for).
    """
    lookup = item_index.to_index
    n = len(item_index)
    text_matrix = None
    if text is not None:
        vectors = [(lookup.get(str(i)), v) for i, v in zip(text["item_id"], text["item_text_embedding"])]
        vectors = [(row, v) for row, v in vectors if row is not None and v is not None and len(v)]
        if not vectors:
            raise ValueError("no item of the student's index has a text embedding")
        text_matrix = np.zeros((n, len(vectors[0][1])), dtype=np.float32)
        for row, vector in vectors:
            text_matrix[row - 1] = np.asarray(vector, dtype=np.float32)
    code_matrix = None
    if codes is not None:
        columns = [f"item_sid_{level}" for level in range(len(code_sizes))]
        missing = [c for c in columns if c not in codes.columns]
        if missing or not code_sizes:
            raise ValueError(f"semantic-ID codes need columns {columns or 'item_sid_0..'}; missing {missing}")
        code_matrix = np.full((n, len(columns)), -1, dtype=np.int64)
        rows = np.array([lookup.get(str(i), 0) for i in codes["item_id"]], dtype=np.int64)
        values = codes[columns].fillna(-1).to_numpy(dtype=np.int64)
        known = rows > 0
        code_matrix[rows[known] - 1] = values[known]
        if (code_matrix >= np.asarray(code_sizes)[None, :]).any():
            raise ValueError(f"a semantic-ID code is out of range for code sizes {code_sizes}")
    return ItemFeatures(text_matrix, code_matrix, tuple(int(k) for k in code_sizes), text_encoder, sid_transform_id)


@dataclass(frozen=True)
class ItemContent:
    """The items' content as the pipeline's tables hold it, before it is aligned to an index.

    Attributes:
        table: `item_id` and `item_text_embedding` and/or `item_sid_0..L-1`.
        code_sizes: codes per semantic-ID level (the transform's); () without codes.
        text_encoder, sid_transform_id: provenance.
    """

    table: pd.DataFrame
    code_sizes: tuple[int, ...] = ()
    text_encoder: str | None = None
    sid_transform_id: str | None = None

    def features(self, item_index: ItemIndex) -> ItemFeatures:
        text = self.table if "item_text_embedding" in self.table.columns else None
        codes = self.table if self.code_sizes else None
        return item_features_from_frames(
            item_index, text, codes, self.code_sizes, self.text_encoder, self.sid_transform_id
        )


class ItemEncoder(nn.Module):
    """Vectors [.., H] for item indices (0 = padding -> zeros).

    Args:
        num_items: N real items (indices 1..N).
        hidden_size: H.
        cfg: which views and how they are fused.
        text_dim: D of the frozen text embeddings (0: none; with `text: auto`, 0 turns the text view off).
        code_sizes: codes per semantic-ID level (empty: none).
    """

    def __init__(
        self, num_items: int, hidden_size: int, cfg: ItemViewsConfig, text_dim: int = 0, code_sizes=()
    ) -> None:
        super().__init__()
        if cfg.text is True and not text_dim:
            raise ValueError("items.text is on but there are no item text embeddings to read")
        if cfg.sid and not code_sizes:
            raise ValueError("items.sid is on but there are no semantic-ID codes to read")
        self.cfg = cfg
        self.num_items = num_items
        self.hidden_size = hidden_size
        h = hidden_size
        # Items training saw (their ID view is trained); set from the training counts.
        seen = torch.ones(num_items + 1, dtype=torch.bool)
        seen[0] = False
        self.register_buffer("seen", seen)
        self.id_emb = nn.Embedding(num_items + 1, h, padding_idx=0) if cfg.id else None
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=h**-0.5)
            with torch.no_grad():
                self.id_emb.weight[0].zero_()
        self.text_dim = text_dim if cfg.text else 0
        self.adapter = None
        if self.text_dim:
            self.register_buffer("text", torch.zeros(num_items + 1, self.text_dim))
            self.register_buffer("text_mean", torch.zeros(self.text_dim))
            self.register_buffer("text_scale", torch.ones(()))
            if cfg.adapter_hidden:
                self.adapter = nn.Sequential(
                    nn.Linear(self.text_dim, cfg.adapter_hidden), nn.GELU(), nn.Linear(cfg.adapter_hidden, h)
                )
            else:
                self.adapter = nn.Linear(self.text_dim, h)
        self.code_sizes = tuple(int(k) for k in code_sizes) if cfg.sid else ()
        self.code_emb = None
        if self.code_sizes:
            # Row 0 of each level: "no code" (padding or an item without one).
            self.register_buffer("codes", torch.zeros(num_items + 1, len(self.code_sizes), dtype=torch.long))
            self.code_emb = nn.ModuleList(nn.Embedding(k + 1, h, padding_idx=0) for k in self.code_sizes)
            for table in self.code_emb:
                nn.init.normal_(table.weight, std=h**-0.5 / len(self.code_sizes) ** 0.5)
                with torch.no_grad():
                    table.weight[0].zero_()
        semantic_parts = int(bool(self.text_dim)) + int(bool(self.code_sizes))
        self.gate = nn.Linear(2 * h, h) if cfg.fusion == "gated" and cfg.id and semantic_parts else None
        parts = int(cfg.id) + semantic_parts
        self.project = nn.Linear(parts * h, h) if cfg.fusion == "concat" and parts > 1 else None

    @property
    def semantic(self) -> bool:
        return bool(self.text_dim or self.code_sizes)

    @torch.no_grad()
    def set_features(self, features: "ItemFeatures | None") -> None:
        """Copy the frozen text vectors and codes in; centre and scale the text (sentence vectors share
        a large common direction, which would otherwise dominate every adapter output)."""
        if self.text_dim:
            if features is None or features.text is None or features.text.shape != (self.num_items, self.text_dim):
                raise ValueError(f"item text embeddings must be [{self.num_items}, {self.text_dim}]")
            text = torch.as_tensor(features.text, dtype=torch.float32)
            present = text.abs().sum(1) > 0
            mean = text[present].mean(0) if present.any() else torch.zeros(self.text_dim)
            centred = torch.where(present[:, None], text - mean, torch.zeros_like(text))
            rms = centred[present].pow(2).sum(1).mean().sqrt() if present.any() else torch.ones(())
            self.text.zero_()
            self.text[1:] = centred
            self.text_mean.copy_(mean)
            self.text_scale.copy_(rms.clamp_min(1e-6))
            if self.cfg.adapter_init == "pca" and isinstance(self.adapter, nn.Linear) and present.sum() > 1:
                self._pca_init(centred[present] / self.text_scale)
        if self.code_sizes:
            if features is None or features.codes is None or features.codes.shape[1] != len(self.code_sizes):
                raise ValueError(f"semantic-ID codes must have {len(self.code_sizes)} levels")
            self.codes.zero_()
            self.codes[1:] = torch.as_tensor(features.codes, dtype=torch.long) + 1  # -1 (none) -> row 0

    @torch.no_grad()
    def _pca_init(self, rows: torch.Tensor) -> None:
        """Adapter weight = the top-H principal directions of the (centred, unit-RMS) text rows, so an
        item's text view starts as its coordinates in content space (norm <= 1, like an ID row's)."""
        _, _, vt = torch.linalg.svd(rows.double(), full_matrices=False)  # vt: [min(n, D), D]
        k = min(self.hidden_size, vt.shape[0])
        weight = torch.zeros(self.hidden_size, self.text_dim, dtype=torch.float64)
        weight[:k] = vt[:k]
        self.adapter.weight.copy_(weight.float())
        self.adapter.bias.zero_()

    @torch.no_grad()
    def set_seen(self, counts: np.ndarray) -> None:
        """Mark items with a training interaction ([N] counts): only they use (and train) an ID view."""
        self.seen[1:] = torch.as_tensor(np.asarray(counts) > 0, device=self.seen.device)

    def id_mask(self, dropout: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """[N + 1] bool: which items use their ID view; `dropout` hides a random share of the seen ones."""
        if dropout <= 0 or not self.semantic:
            return self.seen
        keep = torch.rand(self.num_items + 1, generator=generator).to(self.seen.device) >= dropout
        return self.seen & keep

    def forward(self, indices: torch.Tensor, id_on: torch.Tensor | None = None) -> torch.Tensor:
        """Args: indices [...] in 0..N; id_on [N + 1] bool (default: the seen items). Returns [..., H]."""
        id_on = self.seen if id_on is None else id_on
        if not self.semantic:  # plain SASRec: a lookup (row 0 is zeros; unseen items are off)
            return self.id_emb(indices) * id_on[indices].unsqueeze(-1).to(self.id_emb.weight.dtype)
        uniq, inverse = torch.unique(indices, return_inverse=True)  # each item's views computed once
        return self._vectors(uniq, id_on)[inverse]

    def table(self, id_on: torch.Tensor | None = None) -> torch.Tensor:
        """[N + 1, H] vectors of every index (row 0, padding, is zeros)."""
        return self._vectors(
            torch.arange(self.num_items + 1, device=self.seen.device), self.seen if id_on is None else id_on
        )

    def _vectors(self, idx: torch.Tensor, id_on: torch.Tensor) -> torch.Tensor:
        real = (idx != 0).unsqueeze(-1).to(torch.float32)
        on = id_on[idx].unsqueeze(-1).to(torch.float32)
        id_vectors = self.id_emb(idx) * on if self.id_emb is not None else None
        text = self.text[idx] if self.text_dim else None
        codes = self.codes[idx] if self.code_sizes else None
        return self._fuse(id_vectors, text, codes, on) * real

    def content_vectors(self, text: torch.Tensor | None, codes: torch.Tensor | None) -> torch.Tensor:
        """Vectors of items outside the index (new since training) from their content alone.

        Args:
            text: [M, D] raw text embeddings (rows of zeros: none), or None without a text view.
            codes: [M, L] semantic-ID codes (-1: none), or None without a semantic-ID view.

        Returns:
            [M, H], as an item of the index that training never saw would get.
        """
        if not self.semantic:
            raise ValueError("an ID-only student cannot represent items it has no index for")
        m = len(text) if text is not None else len(codes)
        device = self.seen.device
        if self.text_dim:
            text = text.to(device, torch.float32)
            present = (text.abs().sum(1) > 0)[:, None]
            text = torch.where(present, text - self.text_mean, torch.zeros_like(text))
        if self.code_sizes:
            codes = codes.to(device, torch.long) + 1
        off = torch.zeros(m, 1, device=device)
        id_vectors = torch.zeros(m, self.hidden_size, device=device) if self.id_emb is not None else None
        return self._fuse(id_vectors, text if self.text_dim else None, codes if self.code_sizes else None, off)

    def _fuse(self, id_vectors, text, codes, on: torch.Tensor) -> torch.Tensor:
        """Fuse the views. text: centred rows [M, D]; codes: stored codes [M, L] (0 = none); on: [M, 1]."""
        parts = [id_vectors] if id_vectors is not None else []
        semantic = []
        if text is not None:
            semantic.append(self.adapter(text / self.text_scale))
        if codes is not None:
            semantic.append(sum(table(codes[:, level]) for level, table in enumerate(self.code_emb)))
        if self.project is not None:
            return self.project(torch.cat(parts + semantic, -1))
        if self.gate is not None:
            sem = sum(semantic)
            gate = torch.sigmoid(self.gate(torch.cat([parts[0], sem], -1)))
            # Without an ID view the item is its semantic view alone (the gate has nothing to weigh).
            return on * (gate * parts[0] + (1 - gate) * sem) + (1 - on) * sem
        return sum(parts + semantic)
