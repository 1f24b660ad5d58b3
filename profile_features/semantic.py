"""GBDT-ready semantic columns: compressed dimensions and cluster ids of embeddings.

A `SemanticTransform` (PCA to k dimensions + k-means in PCA space) is fitted once on
one snapshot's vectors and then reused, unchanged, for later snapshots: a tree that
learned splits on `profile_pc_3` must see the same axis at serving time. It is
saved with its provenance (what it was fitted on, encoder, dims) and its id is
served next to the columns, so a training row and a serving row can be checked to
come from the same transform.

Sentence-encoder vectors are anisotropic (all pairs have high cosine); PCA centres
them first, so the components carry the user-specific part, not the shared mean.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from profile_features.transform_store import load_transform_object, save_transform_object, saved_folders

__all__ = [
    "SemanticTransform",
    "fit_transform_model",
    "apply_transform",
    "save_transform",
    "load_transform",
    "latest_transform",
    "newest_transform",
    "vector_matrix",
    "newest_saved",
]

T = TypeVar("T")


@dataclass(frozen=True)
class SemanticTransform:
    """Fitted PCA + k-means. Arrays: mean (d,), components (k, d), centroids (c, k)."""

    kind: str  # "profile" or "item"
    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    centroids: np.ndarray
    encoder: str
    fitted_on: str  # e.g. "user_profile_embeddings/run_date=2026-05-01"
    fitted_rows: int
    input_hash: str

    @property
    def transform_id(self) -> str:
        """Content hash of the fitted arrays: equal ids mean equal columns."""
        digest = hashlib.sha256()
        for array in (self.mean, self.components, self.centroids):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return f"{self.kind}-{digest.hexdigest()[:16]}"


def vector_matrix(vectors) -> np.ndarray:
    """[n, d] float64 of n vectors (lists or arrays), each read as float32 first, as the tables store them."""
    return np.stack([np.asarray(v, dtype=np.float32) for v in vectors]).astype(np.float64)


def fit_transform_model(
    vectors, kind: str, components: int, clusters: int, encoder: str, fitted_on: str, seed: int = 0
) -> SemanticTransform:
    """Fit PCA (via SVD of the centred matrix) and k-means (in PCA space).

    Args:
        vectors: n vectors of width d (n >= max(components, clusters)).
    """
    from sklearn.cluster import KMeans

    matrix = vector_matrix(vectors)
    n, d = matrix.shape
    if n < max(components, clusters):
        raise ValueError(f"{kind}: {n} vectors cannot fit {components} components and {clusters} clusters")
    mean = matrix.mean(axis=0)
    centred = matrix - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    # Sign convention: the largest-magnitude loading of each component is positive,
    # so refitting on the same data gives the same columns.
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    variance = singular**2
    projected = centred @ vt[:components].T
    kmeans = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit(projected)
    # Order clusters by size (largest = 0) so ids do not depend on k-means' labelling.
    order = np.argsort(-np.bincount(kmeans.labels_, minlength=clusters), kind="stable")
    return SemanticTransform(
        kind=kind,
        mean=mean.astype(np.float32),
        components=vt[:components].astype(np.float32),
        explained_variance_ratio=(variance[:components] / variance.sum()).astype(np.float32),
        centroids=kmeans.cluster_centers_[order].astype(np.float32),
        encoder=encoder,
        fitted_on=fitted_on,
        fitted_rows=n,
        input_hash=hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float32).tobytes()).hexdigest()[:16],
    )


def apply_transform(vectors, transform: SemanticTransform, prefix: str) -> pd.DataFrame:
    """Columns `<prefix>_pc_0..k-1` (float32), `<prefix>_cluster` (int64) and `<prefix>_transform_id`.

    Rows whose vector is missing get NaN components and cluster -1.
    """
    k = transform.components.shape[0]
    present = np.array([v is not None and len(v) == transform.mean.shape[0] for v in vectors], dtype=bool)
    pcs = np.full((len(present), k), np.nan, dtype=np.float32)
    cluster = np.full(len(present), -1, dtype=np.int64)
    if present.any():
        matrix = vector_matrix([v for v, ok in zip(vectors, present) if ok])
        projected = (matrix - transform.mean) @ transform.components.T.astype(np.float64)
        pcs[present] = projected.astype(np.float32)
        distances = ((projected[:, None, :] - transform.centroids[None, :, :].astype(np.float64)) ** 2).sum(axis=2)
        cluster[present] = distances.argmin(axis=1)
    frame = pd.DataFrame({f"{prefix}_pc_{i}": pcs[:, i] for i in range(k)})
    frame[f"{prefix}_cluster"] = cluster
    frame[f"{prefix}_transform_id"] = transform.transform_id
    return frame


def save_transform(transform: SemanticTransform, directory: str | Path) -> str:
    """Write `<directory>/<transform_id>/` (any storage URI, see transform_store); returns that folder."""
    return save_transform_object(transform, directory)


def load_transform(folder: str | Path) -> SemanticTransform:
    return load_transform_object(SemanticTransform, folder)


@functools.lru_cache(maxsize=8)
def cached_transform(folder: str) -> SemanticTransform:
    """`load_transform` once per process: executors read the transform by URI, not from the driver."""
    return load_transform(folder)


def newest_saved(
    directory: str | Path, prefix: str, load: Callable[[str], T], accept: Callable[[T], bool] = lambda _: True
) -> tuple[T, str] | None:
    """The most recently saved transform whose id starts with `prefix` and that `accept`s, and its folder.

    Shared by the PCA + k-means and the semantic-ID transforms (both stored by transform_store)."""
    for folder in saved_folders(directory, prefix):
        transform = load(folder)
        if accept(transform):
            return transform, folder
    return None


def newest_transform(directory: str | Path, kind: str) -> tuple[SemanticTransform, str] | None:
    """The most recently saved transform of `kind` (what the latest semantic columns were made with), and its
    folder."""
    return newest_saved(directory, f"{kind}-", load_transform)


def latest_transform(
    directory: str | Path, kind: str, encoder: str, components: int, clusters: int
) -> tuple[SemanticTransform, str] | None:
    """The most recently saved transform of `kind` that fits the encoder and sizes, and its folder."""
    return newest_saved(
        directory,
        f"{kind}-",
        load_transform,
        lambda t: t.encoder == encoder and t.components.shape[0] == components and t.centroids.shape[0] == clusters,
    )
