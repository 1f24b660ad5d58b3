"""Full-ranking evaluation: every item is scored, seen items are not removed.

One held-out target per user, so Recall@K equals HR@K; both are reported as asked.
Rank = number of items scored strictly higher than the target (+ half of exact ties), 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from profile_features.metrics import ndcg_of_ranks
from student.data import pad_left
from student.model import StudentModel

__all__ = ["RankingMetrics", "target_ranks", "ranks_from_scores", "metrics_from_ranks", "evaluate", "summarise_seeds"]


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
    model.eval()
    out = []
    max_len = model.cfg.body.max_len
    for start in range(0, len(inputs), batch_size):
        items = pad_left(inputs[start : start + batch_size], max_len).to(model.device)
        scores = model.score_items(items).cpu().numpy()  # [B, N]
        out.append(ranks_from_scores(scores, np.asarray(targets[start : start + batch_size]), candidates))
    return np.concatenate(out) if out else np.zeros(0)


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


def metrics_from_ranks(ranks: np.ndarray, k: int = 10) -> RankingMetrics:
    """NDCG@k, Recall@k, HR@k and MRR from 0-based ranks [U]."""
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks < k
    ndcg = ndcg_of_ranks(ranks, k)
    return RankingMetrics(
        ndcg_at_10=float(ndcg.mean()) if len(ranks) else 0.0,
        recall_at_10=float(hit.mean()) if len(ranks) else 0.0,
        hr_at_10=float(hit.mean()) if len(ranks) else 0.0,
        mrr=float((1.0 / (ranks + 1.0)).mean()) if len(ranks) else 0.0,
        users=int(len(ranks)),
    )


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
