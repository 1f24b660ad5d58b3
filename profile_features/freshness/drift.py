"""Distribution shift of the semantic columns between two snapshots.

The PCA + k-means transform is fitted once and reused (see `profile_features.semantic`),
so `profile_pc_3` is the same axis in both runs and its distribution can be compared
directly; a changed transform id makes the comparison meaningless and is refused.

Metrics:
  * PSI (population stability index) per compressed dimension, on quantile bins of the
    reference run: sum over bins of (c - r) * ln(c / r), shares floored at `epsilon`
    so an empty bin gives a large but finite term. Rule of thumb: < 0.1 no change,
    0.1-0.2 moderate, > 0.2 significant shift (the default flag).
  * Two-sample Kolmogorov-Smirnov statistic per dimension: the largest gap between the
    two empirical CDFs. Unlike PSI it does not depend on the binning.
  * Cluster frequencies: PSI over clusters and total variation distance (half the L1
    distance of the share vectors: the share of users that would have to move), plus a
    per-cluster share table; a cluster is flagged when its share moves by more than
    `cluster_share` (absolute).
Rows without a vector (cluster -1, NaN components) are counted and left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
import pandas as pd
from pydantic import Field

from profile_features.freshness.sketch import DEFAULT_CAPACITY, BinCounts, ColumnSketch, ks_from_counts
from profile_features.strict_model import StrictModel

__all__ = [
    "DriftSettings",
    "DimensionDrift",
    "ClusterShare",
    "ClusterDrift",
    "DriftComparison",
    "quantile_edges",
    "bin_shares",
    "psi_from_shares",
    "psi",
    "ks_statistic",
    "total_variation",
    "mean_vector_cosine",
    "vector_cosine",
    "component_columns",
    "compare_batches",
    "compare_runs",
    "VectorMean",
]


class DriftSettings(StrictModel):
    """Binning and flag thresholds; a metric is flagged when it is past (above) its threshold."""

    psi: float = Field(0.2, ge=0)  # per compressed dimension
    ks: float = Field(0.1, ge=0, le=1)
    cluster_psi: float = Field(0.2, ge=0)
    cluster_tvd: float = Field(0.1, ge=0, le=1)
    cluster_share: float = Field(0.05, ge=0, le=1)  # absolute change of one cluster's share
    # The cosine of the two runs' mean profile vectors; None: reported, never flagged.
    min_mean_cosine: float | None = Field(None, ge=-1, le=1)
    bins: int = Field(10, ge=2)
    epsilon: float = Field(1e-4, gt=0, lt=1)


class DimensionDrift(TypedDict):
    column: str
    reference_mean: float
    current_mean: float
    reference_std: float
    current_std: float
    psi: float
    ks: float
    flags: list[str]


class ClusterShare(TypedDict):
    cluster: int
    reference_count: int
    current_count: int
    reference_share: float
    current_share: float
    change: float
    flagged: bool


class ClusterDrift(TypedDict):
    psi: float
    tvd: float
    flags: list[str]
    table: list[ClusterShare]


class DriftComparison(TypedDict):
    prefix: str
    reference_rows: int
    current_rows: int
    reference_without_vector: int
    current_without_vector: int
    dimensions: list[DimensionDrift]
    clusters: ClusterDrift
    flagged: list[str]


def _clean(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def quantile_edges(reference, bins: int) -> np.ndarray:
    """Interior bin edges at the reference's 1/bins .. (bins-1)/bins quantiles, duplicates
    dropped (ties in the reference merge bins rather than leaving empty ones)."""
    reference = _clean(reference)
    if len(reference) == 0:
        return np.array([])
    return np.unique(np.quantile(reference, np.arange(1, bins) / bins))


def bin_shares(values, edges: np.ndarray) -> np.ndarray:
    """Share of `values` per bin (-inf, e0], (e0, e1], ..., (e_last, inf): len(edges) + 1 shares."""
    values = _clean(values)
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi_from_shares(reference_shares, current_shares, epsilon: float = 1e-4) -> float:
    """sum (c - r) * ln(c / r) with both shares floored at `epsilon`."""
    r = np.maximum(np.asarray(reference_shares, dtype=np.float64), epsilon)
    c = np.maximum(np.asarray(current_shares, dtype=np.float64), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi(reference, current, bins: int = 10, epsilon: float = 1e-4) -> float:
    """PSI of `current` against `reference` on the reference's quantile bins (NaN without data)."""
    reference, current = _clean(reference), _clean(current)
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = quantile_edges(reference, bins)
    return psi_from_shares(bin_shares(reference, edges), bin_shares(current, edges), epsilon)


def ks_statistic(reference, current) -> float:
    """Two-sample KS statistic sup_x |F_ref(x) - F_cur(x)| (NaN without data)."""
    reference, current = np.sort(_clean(reference)), np.sort(_clean(current))
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    grid = np.concatenate([reference, current])
    gap = np.searchsorted(reference, grid, side="right") / len(reference) - np.searchsorted(
        current, grid, side="right"
    ) / len(current)
    return float(np.max(np.abs(gap)))


def total_variation(reference_shares, current_shares) -> float:
    """Half the L1 distance: the share of mass that moved."""
    return float(0.5 * np.abs(np.asarray(reference_shares) - np.asarray(current_shares)).sum())


class VectorMean:
    """Running sum of vectors (None and empty ones skipped), batch by batch."""

    def __init__(self):
        self.total, self.count = None, 0

    def update(self, vectors) -> None:
        kept = [np.asarray(v, dtype=np.float64) for v in vectors if v is not None and len(v)]
        if kept:
            batch = np.stack(kept).sum(axis=0)
            self.total = batch if self.total is None else self.total + batch
            self.count += len(kept)

    def mean(self) -> np.ndarray | None:
        return None if self.total is None else self.total / self.count


def vector_cosine(reference: VectorMean, current: VectorMean) -> float:
    """Cosine between two mean vectors (NaN without data or for a zero mean)."""
    a, b = reference.mean(), current.mean()
    if a is None or b is None:
        return float("nan")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm else float("nan")


def mean_vector_cosine(reference_vectors, current_vectors) -> float:
    """Cosine between the two runs' mean vectors (a cheap global check; NaN without data)."""
    means = VectorMean(), VectorMean()
    means[0].update(reference_vectors)
    means[1].update(current_vectors)
    return vector_cosine(*means)


def component_columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    """`<prefix>_pc_<i>` columns in index order."""
    head = f"{prefix}_pc_"
    found = [c for c in frame.columns if c.startswith(head) and c[len(head) :].isdigit()]
    return sorted(found, key=lambda c: int(c[len(head) :]))


def _past(value: float, threshold: float) -> bool:
    return bool(np.isfinite(value) and value > threshold)


def _dimension(
    column: str,
    reference: tuple[ColumnSketch, BinCounts],
    current: tuple[ColumnSketch, BinCounts],
    settings: DriftSettings,
) -> DimensionDrift:
    (ref_sketch, ref_counts), (cur_sketch, cur_counts) = reference, current
    empty = ref_counts.count == 0 or cur_counts.count == 0
    value_psi = float("nan") if empty else psi_from_shares(ref_counts.shares(), cur_counts.shares(), settings.epsilon)
    value_ks = ks_from_counts(ref_counts, cur_counts)
    flags = [f"{column}: PSI {value_psi:.3f} > {settings.psi}"] if _past(value_psi, settings.psi) else []
    if _past(value_ks, settings.ks):
        flags.append(f"{column}: KS {value_ks:.3f} > {settings.ks}")
    return DimensionDrift(
        column=column,
        reference_mean=ref_sketch.mean_or_nan,
        current_mean=cur_sketch.mean_or_nan,
        reference_std=ref_sketch.std,
        current_std=cur_sketch.std,
        psi=value_psi,
        ks=value_ks,
        flags=flags,
    )


def _clusters(reference: pd.Series, current: pd.Series, prefix: str, settings: DriftSettings) -> ClusterDrift:
    """`reference`, `current`: users per cluster id."""
    column = f"{prefix}_cluster"
    ids = sorted(set(reference.index) | set(current.index))
    ref_counts = reference.reindex(ids, fill_value=0)
    cur_counts = current.reindex(ids, fill_value=0)
    ref_shares = ref_counts / max(int(reference.sum()), 1)
    cur_shares = cur_counts / max(int(current.sum()), 1)
    table = []
    for cluster in ids:
        change = float(cur_shares[cluster] - ref_shares[cluster])
        table.append(
            ClusterShare(
                cluster=int(cluster),
                reference_count=int(ref_counts[cluster]),
                current_count=int(cur_counts[cluster]),
                reference_share=float(ref_shares[cluster]),
                current_share=float(cur_shares[cluster]),
                change=change,
                flagged=abs(change) > settings.cluster_share,
            )
        )
    empty = reference.sum() == 0 or current.sum() == 0
    value_psi = float("nan") if empty else psi_from_shares(ref_shares, cur_shares, settings.epsilon)
    value_tvd = float("nan") if empty else total_variation(ref_shares, cur_shares)
    flags = (
        [f"{column}: PSI {value_psi:.3f} > {settings.cluster_psi}"] if _past(value_psi, settings.cluster_psi) else []
    )
    if _past(value_tvd, settings.cluster_tvd):
        flags.append(f"{column}: TVD {value_tvd:.3f} > {settings.cluster_tvd}")
    flags += [
        f"{column} = {row['cluster']}: share {row['reference_share']:.3f} -> {row['current_share']:.3f} "
        f"(change {row['change']:+.3f}, limit {settings.cluster_share})"
        for row in table
        if row["flagged"]
    ]
    return ClusterDrift(psi=value_psi, tvd=value_tvd, flags=flags, table=table)


@dataclass
class _RunPass:
    """What the first pass over one run keeps: counts, one sketch per component, users per cluster."""

    columns: list[str] | None = None
    has_cluster: bool = False
    rows: int = 0
    without_vector: int = 0
    sketches: dict[str, ColumnSketch] = field(default_factory=dict)
    clusters: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))


def _with_vector(batch: pd.DataFrame, columns: list[str], cluster: str) -> pd.DataFrame:
    """Rows that have a vector: cluster >= 0 (or, without a cluster column, every component present)."""
    return batch[batch[cluster] >= 0] if cluster in batch else batch[batch[columns].notna().all(axis=1)]


def _first_pass(batches: Iterable[pd.DataFrame], prefix: str, capacity: int) -> _RunPass:
    cluster = f"{prefix}_cluster"
    run = _RunPass()
    for batch in batches:
        columns = component_columns(batch, prefix)
        if run.columns is None:
            run.columns, run.has_cluster = columns, cluster in batch
            run.sketches = {c: ColumnSketch(capacity, seed=i) for i, c in enumerate(columns)}
        elif columns != run.columns:
            raise ValueError(f"{prefix}: one run's files have different component columns")
        kept = _with_vector(batch, columns, cluster)
        run.rows += len(batch)
        run.without_vector += len(batch) - len(kept)
        for column in columns:
            run.sketches[column].update(kept[column].to_numpy(dtype="float64", na_value=np.nan))
        if run.has_cluster:
            counts = kept[cluster].astype("int64").value_counts()
            run.clusters = run.clusters.add(counts, fill_value=0).astype("int64")
    return run if run.columns is not None else _RunPass(columns=[])


def _second_pass(
    batches: Iterable[pd.DataFrame], prefix: str, columns: list[str], bins: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, BinCounts]:
    counts = {c: BinCounts(*bins[c]) for c in columns}
    for batch in batches:
        kept = _with_vector(batch, columns, f"{prefix}_cluster")
        for column in columns:
            counts[column].update(kept[column].to_numpy(dtype="float64", na_value=np.nan))
    return counts


def compare_batches(
    reference: Callable[[], Iterable[pd.DataFrame]],
    current: Callable[[], Iterable[pd.DataFrame]],
    prefix: str = "profile",
    settings: DriftSettings | None = None,
    capacity: int = DEFAULT_CAPACITY,
) -> DriftComparison:
    """Compare two runs read batch by batch, in memory bounded by `capacity` values per column.

    Args:
        reference, current: callables that return a fresh iterator over the run's batches (each run
            is read twice: once to summarise, once to count on the reference's bins).
        capacity: sample size per column (see `sketch`); runs up to this size compare exactly.

    Raises:
        ValueError: when the runs have different component columns.
    """
    settings = settings or DriftSettings()
    ref, cur = _first_pass(reference(), prefix, capacity), _first_pass(current(), prefix, capacity)
    if ref.columns != cur.columns:
        raise ValueError(
            f"{prefix}: the runs have different component columns ({len(ref.columns)} vs {len(cur.columns)})"
        )
    columns = ref.columns
    bins = {
        c: (
            quantile_edges(ref.sketches[c].sample, settings.bins),
            np.unique(np.concatenate([ref.sketches[c].sample, cur.sketches[c].sample])),
        )
        for c in columns
    }
    ref_counts = _second_pass(reference(), prefix, columns, bins)
    cur_counts = _second_pass(current(), prefix, columns, bins)
    dimensions = [
        _dimension(c, (ref.sketches[c], ref_counts[c]), (cur.sketches[c], cur_counts[c]), settings) for c in columns
    ]
    clusters = (
        _clusters(ref.clusters, cur.clusters, prefix, settings)
        if ref.has_cluster and cur.has_cluster
        else ClusterDrift(psi=float("nan"), tvd=float("nan"), flags=[], table=[])
    )
    return DriftComparison(
        prefix=prefix,
        reference_rows=ref.rows,
        current_rows=cur.rows,
        reference_without_vector=ref.without_vector,
        current_without_vector=cur.without_vector,
        dimensions=dimensions,
        clusters=clusters,
        flagged=[flag for d in dimensions for flag in d["flags"]] + clusters["flags"],
    )


def compare_runs(
    reference: pd.DataFrame, current: pd.DataFrame, prefix: str = "profile", settings: DriftSettings | None = None
) -> DriftComparison:
    """Compare two runs of a semantic table held in memory (`user_semantic` for prefix "profile"):
    `compare_batches` with one batch each, exact.

    Args:
        reference, current: rows with `<prefix>_pc_0..k-1` and `<prefix>_cluster`; the
            same transform must have written both (the caller checks the transform id).
    """
    capacity = max(len(reference), len(current), 1)
    return compare_batches(lambda: iter([reference]), lambda: iter([current]), prefix, settings, capacity)
