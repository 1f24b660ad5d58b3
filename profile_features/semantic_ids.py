"""Semantic IDs: residual k-means codes of item text embeddings (a cheap stand-in for TIGER's RQ-VAE).

Level 0 clusters the centred item vectors; each next level clusters what the previous levels'
centroids left unexplained. An item's codes (c_0, .., c_{L-1}) are a coarse-to-fine address in
content space: items sharing c_0 are broadly alike, items sharing (c_0, c_1) closely. GBDTs read
them as hierarchical categoricals (`item_sid_0..L-1`); the student gives every code an embedding,
so an item nobody interacted with starts from what its code-mates taught.

Like the PCA transform, one fitted transform is reused for later snapshots (a code must keep its
meaning) and served with its id. Codes within a level are ordered by size (largest = 0), so a refit
on the same data with the same seed gives the same codes.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.schemas import SID_TRANSFORM_ID, sid_column_names
from profile_features.semantic import newest_saved, vector_matrix
from profile_features.transform_store import load_transform_object, save_transform_object

__all__ = [
    "SemanticIdTransform",
    "default_codes",
    "fit_semantic_ids",
    "assign_codes",
    "sid_columns",
    "save_sid_transform",
    "load_sid_transform",
    "cached_sid_transform",
    "latest_sid_transform",
    "newest_sid_transform",
]

KIND = "sid"


@dataclass(frozen=True)
class SemanticIdTransform:
    """Fitted residual k-means. Arrays: mean (d,), codebooks (L, K, d)."""

    mean: np.ndarray
    codebooks: np.ndarray
    encoder: str
    fitted_on: str
    fitted_rows: int
    input_hash: str

    @property
    def levels(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def codes(self) -> int:
        return int(self.codebooks.shape[1])

    @property
    def code_sizes(self) -> tuple[int, ...]:
        return (self.codes,) * self.levels

    @property
    def transform_id(self) -> str:
        digest = hashlib.sha256()
        for array in (self.mean, self.codebooks):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return f"{KIND}-{digest.hexdigest()[:16]}"


def default_codes(items: int) -> int:
    """Codes per level when not configured: about sqrt(items), so two levels can tell most items
    apart while a level-0 code still groups ~sqrt(items) of them; at least 2, at most 256 (TIGER's)."""
    return int(np.clip(round(np.sqrt(max(items, 1))), 2, 256))


def _nearest(residual: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid per row (squared Euclidean), in chunks to bound memory."""
    out = np.empty(len(residual), dtype=np.int64)
    norms = (centroids**2).sum(1)
    for start in range(0, len(residual), 8192):
        part = residual[start : start + 8192]
        out[start : start + 8192] = (norms[None, :] - 2 * part @ centroids.T).argmin(1)
    return out


def fit_semantic_ids(
    vectors, levels: int, codes: int | None, encoder: str, fitted_on: str, seed: int = 0
) -> SemanticIdTransform:
    """Fit `levels` levels of `codes` centroids (None: `default_codes`) on item vectors [n, d]."""
    from sklearn.cluster import KMeans

    matrix = vector_matrix(vectors)
    n = len(matrix)
    codes = codes or default_codes(n)
    if n < codes:
        raise ValueError(f"{n} item vectors cannot fit {codes} semantic-ID codes per level; lower semantic.sid_codes")
    mean = matrix.mean(0)
    residual = matrix - mean
    books = []
    for level in range(levels):
        kmeans = KMeans(n_clusters=codes, n_init=2, random_state=seed + level).fit(residual)
        labels = kmeans.labels_
        order = np.argsort(-np.bincount(labels, minlength=codes), kind="stable")
        centroids = kmeans.cluster_centers_[order]
        books.append(centroids)
        residual = residual - centroids[_nearest(residual, centroids)]
    return SemanticIdTransform(
        mean=mean.astype(np.float32),
        codebooks=np.stack(books).astype(np.float32),
        encoder=encoder,
        fitted_on=fitted_on,
        fitted_rows=n,
        input_hash=hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float32).tobytes()).hexdigest()[:16],
    )


def assign_codes(vectors, transform: SemanticIdTransform) -> np.ndarray:
    """[n, L] int64 codes; rows whose vector is missing (or of another width) get -1 at every level."""
    width = transform.mean.shape[0]
    present = np.array([v is not None and len(v) == width for v in vectors], dtype=bool)
    out = np.full((len(present), transform.levels), -1, dtype=np.int64)
    if present.any():
        residual = vector_matrix([v for v, ok in zip(vectors, present) if ok]) - transform.mean
        codes = np.empty((len(residual), transform.levels), dtype=np.int64)
        for level, book in enumerate(transform.codebooks.astype(np.float64)):
            codes[:, level] = _nearest(residual, book)
            residual = residual - book[codes[:, level]]
        out[present] = codes
    return out


def sid_columns(vectors, transform: SemanticIdTransform) -> pd.DataFrame:
    """`item_sid_0..L-1` (int64, -1 = no vector) and `item_sid_transform_id`."""
    codes = assign_codes(vectors, transform)
    frame = pd.DataFrame({name: codes[:, level] for level, name in enumerate(sid_column_names(transform.levels))})
    frame[SID_TRANSFORM_ID] = transform.transform_id
    return frame


def save_sid_transform(transform: SemanticIdTransform, directory: str | Path) -> str:
    """Write `<directory>/<transform_id>/` (any storage URI, see transform_store); returns that folder."""
    return save_transform_object(transform, directory)


def load_sid_transform(folder: str | Path) -> SemanticIdTransform:
    return load_transform_object(SemanticIdTransform, folder)


@functools.lru_cache(maxsize=4)
def cached_sid_transform(folder: str) -> SemanticIdTransform:
    """`load_sid_transform` once per process (executors read it by URI)."""
    return load_sid_transform(folder)


def newest_sid_transform(directory: str | Path) -> tuple[SemanticIdTransform, str] | None:
    """The most recently saved semantic-ID transform and its folder."""
    return newest_saved(directory, f"{KIND}-", load_sid_transform)


def latest_sid_transform(
    directory: str | Path, encoder: str, levels: int, codes: int | None
) -> tuple[SemanticIdTransform, str] | None:
    """The newest saved transform for this encoder and shape (`codes` None: any count)."""
    return newest_saved(
        directory,
        f"{KIND}-",
        load_sid_transform,
        lambda t: t.encoder == encoder and t.levels == levels and codes in (None, t.codes),
    )
