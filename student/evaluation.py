"""Full-ranking evaluation: every item is scored, seen items are not removed.

Rank = number of items scored strictly higher than the target (+ half of exact ties), 0-based.
With one held-out target per user Recall@K equals HR@K. With several (a user's first items after a
cutoff, all ranked from the same history: `targets_ranks`), a user's NDCG@K is the mean over their
targets, Recall@K the share of them in the top K, HR@K whether any is, MRR from the best-ranked one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from profile_features.metrics import ndcg_of_ranks
from profile_features.student.data import pad_left
from profile_features.student.model import StudentModel

__all__ = [
    "blended_target_ranks",
    "RankingMetrics",
    "target_ranks",
    "targets_ranks",
    "pad_targets",
    "ranks_from_scores",
    "per_user_metrics",
    "metrics_from_ranks",
    "evaluate",
    "summarise_seeds",
]


@dataclass(frozen=True)
class RankingMetrics:
    """Mean metrics over users."""

    ndcg_at_10: float
    recall_at_10: float
    hr_at_10: float
    mrr: float
    users: int

    def as_dict(self) -> dict[str, float]:
        return {
            "ndcg@10": self.ndcg_at_10,
            "recall@10": self.recall_at_10,
            "hr@10": self.hr_at_10,
            "mrr": self.mrr,
            "users": self.users,
        }


@torch.no_grad()
def target_ranks(
    model: StudentModel,
    inputs: list[list[int]],
    targets: list[int],
    batch_size: int = 256,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """0-based rank of each target among all items (or among `candidates`).

    Args:
        model: Trained student (put in eval mode here).
        inputs: U histories as item indices (oldest -> newest), each non-empty.
        targets: U target item indices (1..N).
        batch_size: Users per forward pass.
        candidates: optional [N] bool over items 1..N: rank only among these (a serving stack's separate
            pool, e.g. items new since training); every target must be one.

    Returns:
        [U] float ranks (ties count half).
    """
    out = [
        ranks_from_scores(scores, np.asarray(targets[start:stop]), candidates)
        for start, stop, scores in _scored_batches(model, inputs, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def _scored_batches(model: StudentModel, inputs: list[list[int]], batch_size: int):
    """(start, stop, [stop - start, N] scores over items 1..N) for each batch of histories, in eval mode."""
    model.eval()
    max_len = model.cfg.body.max_len
    for start in range(0, len(inputs), batch_size):
        stop = min(start + batch_size, len(inputs))
        items = pad_left(inputs[start:stop], max_len).to(model.device)
        yield start, stop, model.score_items(items).cpu().numpy()


def pad_targets(targets: list[list[int]]) -> np.ndarray:
    """[U, T] item indices (T the longest list), 0 (no item) where a user has fewer targets."""
    width = max((len(t) for t in targets), default=0)
    out = np.zeros((len(targets), width), dtype=np.int64)
    for row, items in enumerate(targets):
        out[row, : len(items)] = items
    return out


@torch.no_grad()
def targets_ranks(model: StudentModel, inputs: list[list[int]], targets: list[list[int]], batch_size: int = 256):
    """[U, T] 0-based rank of each user's targets (item indices 1..N) among all items, every history
    scored once; NaN where a user has fewer than T targets."""
    padded = pad_targets(targets)
    out = np.full(padded.shape, np.nan)
    for start, stop, scores in _scored_batches(model, inputs, batch_size):
        block = padded[start:stop]
        for column in range(block.shape[1]):
            has = block[:, column] > 0
            out[start:stop][has, column] = ranks_from_scores(scores[has], block[has, column])
    return out


@torch.no_grad()
def blended_target_ranks(
    model: StudentModel,
    inputs: list[list[int]],
    targets: list[int],
    prior: np.ndarray,
    weights: list[float],
    batch_size: int = 256,
) -> np.ndarray:
    """[W, R] 0-based rank of each target (1..N) among all items when `weights[w]` x `prior` ([N], one value
    per item) is added to the model's scores: every history is scored once, whatever the number of weights."""
    out = np.zeros((len(weights), len(inputs)))
    prior = np.asarray(prior, dtype=np.float64)
    for start, stop, scores in _scored_batches(model, inputs, batch_size):
        wanted, scores = np.asarray(targets[start:stop]), scores.astype(np.float64)
        for row, weight in enumerate(weights):
            out[row, start:stop] = ranks_from_scores(scores + weight * prior, wanted)
    return out


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each target item (1..N) in its row of `scores` [U, N], ties counted half; items
    outside `candidates` ([N] bool, when given) are not ranked."""
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets - 1][:, None]
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        if not candidates[targets - 1].all():
            raise ValueError("every target must be one of the candidates")
        scores = scores[:, candidates]
    higher = (scores > target_scores).sum(1)
    ties = (scores == target_scores).sum(1) - 1
    return higher + ties / 2


def per_user_metrics(ranks: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per user ([U] ranks, one target each, or [U, T] with NaN for no target; every user has one): NDCG@k
    (mean over the targets), Recall@k (share of targets in the top k), HR@k (any) and MRR (best target)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    ranks = ranks[:, None] if ranks.ndim == 1 else ranks
    present = ~np.isnan(ranks)
    count = np.maximum(present.sum(1), 1)
    filled = np.where(present, ranks, np.inf)
    hit = filled < k
    return {
        "ndcg@10": np.where(present, ndcg_of_ranks(filled, k), 0.0).sum(1) / count,
        "recall@10": hit.sum(1) / count,
        "hr@10": hit.any(1).astype(np.float64),
        "mrr": 1.0 / (filled.min(1, initial=np.inf) + 1.0),
    }


def metrics_from_ranks(ranks: np.ndarray, k: int = 10) -> RankingMetrics:
    """NDCG@k, Recall@k, HR@k and MRR, means over users, from 0-based ranks ([U] or [U, T], `per_user_metrics`)."""
    users = len(ranks)
    means = {name: float(v.mean()) if users else 0.0 for name, v in per_user_metrics(ranks, k).items()}
    return RankingMetrics(means["ndcg@10"], means["recall@10"], means["hr@10"], means["mrr"], users)


def evaluate(model: StudentModel, inputs: list[list[int]], targets: list[int], batch_size: int = 256) -> RankingMetrics:
    """Full-ranking metrics for next-item targets."""
    return metrics_from_ranks(target_ranks(model, inputs, targets, batch_size))


def summarise_seeds(runs: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """metric -> (mean, std over seeds, ddof=1 when >1 run)."""
    keys = [k for k in runs[0] if k != "users"]
    out = {}
    for k in keys:
        v = np.array([r[k] for r in runs], dtype=np.float64)
        out[k] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
    return out
