"""Bounded-memory summaries of one numeric column, built batch by batch, for the drift report.

A run of `user_semantic` has one row per user; at tens of millions of users its columns
do not fit one machine comfortably. A `ColumnSketch` keeps what the drift metrics need
in memory that does not grow with the run: count, mean and M2 (merged batch by batch,
Chan et al.), and a uniform reservoir sample of at most `capacity` values. The PSI bin
edges and the KS evaluation grid come from the samples; a second pass (`BinCounts`)
counts every value of both runs on them, so the shares are exact for those edges.

When a run has at most `capacity` values its sample is the whole run, and both metrics
equal the exact in-memory ones (`drift.psi`, `drift.ks_statistic`). Above it the edges are
sample quantiles and KS is the largest CDF gap on the grid of both samples: never above
the exact statistic, and below it by at most the mass between two neighbouring grid points.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_CAPACITY", "ColumnSketch", "BinCounts", "ks_from_counts"]

DEFAULT_CAPACITY = 100_000


class ColumnSketch:
    """Count, mean, M2 and a reservoir sample of the finite values seen so far."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, seed: int = 0):
        self.capacity = capacity
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self._sample = np.empty(0, dtype=np.float64)
        self._rng = np.random.default_rng(seed)

    def update(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        n = len(values)
        if n == 0:
            return
        mean, m2 = float(values.mean()), float(((values - values.mean()) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self._reservoir(values)
        self.count = total

    def _reservoir(self, values: np.ndarray) -> None:
        room = max(self.capacity - len(self._sample), 0)
        self._sample = np.concatenate([self._sample, values[:room]])
        values = values[room:]
        if len(values) == 0:
            return
        # Algorithm R: the value at overall position i replaces a random slot with probability capacity / (i + 1).
        positions = self.count + room + np.arange(len(values))
        slots = (self._rng.random(len(values)) * (positions + 1)).astype(np.int64)
        keep = slots < self.capacity
        self._sample[slots[keep]] = values[keep]

    @property
    def sample(self) -> np.ndarray:
        return self._sample

    @property
    def exact(self) -> bool:
        """The sample holds every value seen."""
        return self.count <= self.capacity

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else float("nan")

    @property
    def mean_or_nan(self) -> float:
        return self.mean if self.count else float("nan")


class BinCounts:
    """Counts of every value per PSI bin and per KS grid point, over any number of batches."""

    def __init__(self, edges: np.ndarray, grid: np.ndarray):
        self.edges, self.grid = edges, grid
        self.bins = np.zeros(len(edges) + 1, dtype=np.int64)
        self.at_or_below = np.zeros(len(grid), dtype=np.int64)  # values <= grid[i], after `cumulative`
        self.count = 0

    def update(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        self.count += len(values)
        self.bins += np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=len(self.edges) + 1)
        # A value v is <= grid[i] for every i >= searchsorted(grid, v, 'left').
        self.at_or_below += np.bincount(np.searchsorted(self.grid, values, side="left"), minlength=len(self.grid) + 1)[
            : len(self.grid)
        ]

    def shares(self) -> np.ndarray:
        return self.bins / max(self.count, 1)

    def cdf(self) -> np.ndarray:
        return np.cumsum(self.at_or_below) / max(self.count, 1)


def ks_from_counts(reference: BinCounts, current: BinCounts) -> float:
    """The largest gap between the two CDFs on the shared grid (NaN without data)."""
    if reference.count == 0 or current.count == 0 or len(reference.grid) == 0:
        return float("nan")
    return float(np.max(np.abs(reference.cdf() - current.cdf())))
