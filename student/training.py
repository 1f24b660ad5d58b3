"""Training loop: next-item CE on every position, plus profile distillation.

One training example per user: the newest `max_len` + 1 training items give inputs
(all but the last) and targets (all but the first). Distillation reads the pooled state of
the same forward pass, so it costs one small head and one loss per batch.

Training reads users chunk by chunk from a `TrainingUsers` source (sources.py): one pass
for the statistics (item counts, profile moments), one per epoch, one to finalize. Memory
is the model plus one chunk, whether the source is in memory or a Parquet dataset.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from student.config import StudentConfig
from student.data import ItemIndex, pad_left
from student.evaluation import RankingMetrics, evaluate, metrics_from_ranks
from student.heads import ProfileMoments, readout_moments
from student.losses import LossWeighting, combine, distill_loss, sampled_next_item_loss
from student.model import StudentModel
from student.sources import TrainingUsers, UserChunk

__all__ = [
    "TrainingData",
    "build_training_data",
    "SourceStats",
    "source_stats",
    "FitResult",
    "resolve_device",
    "item_counts",
    "popularity_metrics",
    "fit",
    "finalize",
]


@dataclass(frozen=True)
class TrainingData:
    """Index-encoded training histories and (optional) profile targets.

    Attributes:
        item_index: item id <-> index.
        users: U user ids.
        sequences: U index sequences (oldest -> newest), only what training may see.
        profiles: [U, P] float32 raw profile embeddings (rows of users without one are 0), or None.
        has_profile: [U] bool.
    """

    item_index: ItemIndex
    users: list[str]
    sequences: list[list[int]]
    profiles: np.ndarray | None
    has_profile: np.ndarray

    @property
    def profile_dim(self) -> int:
        return 0 if self.profiles is None else int(self.profiles.shape[1])

    def chunks(self, rng: np.random.Generator | None = None):
        """Everything as one chunk (a `TrainingUsers` source)."""
        yield UserChunk(self.users, self.sequences, self.profiles, self.has_profile)


def build_training_data(
    histories: dict[str, list[str]],
    item_index: ItemIndex,
    profiles: dict[str, np.ndarray] | None = None,
) -> TrainingData:
    """Encode histories with `item_index` and align profiles to users.

    Args:
        histories: user -> item ids (oldest -> newest), training part only.
        item_index: Index covering the training items.
        profiles: user -> [P] profile embedding written from that same training part.
    """
    users = sorted(histories)
    seqs = [item_index.encode(histories[u]) for u in users]
    has = np.zeros(len(users), dtype=bool)
    mat = None
    if profiles:
        dim = len(next(iter(profiles.values())))
        mat = np.zeros((len(users), dim), dtype=np.float32)
        for row, u in enumerate(users):
            vec = profiles.get(u)
            if vec is not None:
                mat[row] = np.asarray(vec, dtype=np.float32)
                has[row] = True
    return TrainingData(item_index, users, seqs, mat, has)


@dataclass
class SourceStats:
    """One pass over a source: what training needs before its first epoch."""

    counts: np.ndarray  # [N] training interactions per item index 1..N (position j is index j + 1)
    users: int
    interactions: int
    trainable_users: int  # with 2+ items: they give next-item examples
    profiles: ProfileMoments | None  # moments of the raw profiles present (None: no profile column)

    @property
    def users_with_profile(self) -> int:
        return 0 if self.profiles is None else self.profiles.n


def source_stats(data: TrainingUsers) -> SourceStats:
    counts = np.zeros(len(data.item_index) + 1, dtype=np.float64)
    users = interactions = trainable = 0
    moments = ProfileMoments(data.profile_dim) if data.profile_dim else None
    for chunk in data.chunks():
        for seq in chunk.sequences:
            np.add.at(counts, np.asarray(seq, dtype=np.int64), 1.0)
            interactions += len(seq)
            trainable += len(seq) >= 2
        users += len(chunk.sequences)
        if moments is not None and chunk.profiles is not None:
            moments.add(chunk.profiles[chunk.has_profile])
    return SourceStats(counts[1:], users, interactions, trainable, moments)


@dataclass
class FitResult:
    """Trained model plus what happened."""

    model: StudentModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict[str, float] | None = None
    popularity_valid: dict[str, float] | None = None  # most-popular on the same validation targets
    # True when no epoch beat most-popular on validation and the head now ranks by popularity.
    ranks_by_popularity: bool = False
    seconds: float = 0.0
    data: SourceStats | None = None  # the training users' statistics


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def item_counts(data: TrainingUsers) -> np.ndarray:
    """[N] training interactions per item index 1..N (position j is index j + 1)."""
    return source_stats(data).counts


def popularity_metrics(counts: np.ndarray, targets: list[int]) -> dict[str, float]:
    """Most-popular's full-ranking metrics on `targets` (item indices), ties counted half."""
    target_counts = counts[np.asarray(targets, dtype=np.int64) - 1]
    order = np.sort(counts)
    higher = len(counts) - np.searchsorted(order, target_counts, side="right")
    ties = np.searchsorted(order, target_counts, side="right") - np.searchsorted(order, target_counts, side="left") - 1
    return metrics_from_ranks(higher + ties / 2).as_dict()


def _sample_valid(valid, limit: int, seed: int):
    inputs, targets = valid
    if len(inputs) <= limit:
        return valid
    keep = np.sort(np.random.default_rng(seed).choice(len(inputs), size=limit, replace=False))
    return [inputs[i] for i in keep], [targets[i] for i in keep]


@torch.no_grad()
def finalize(model: StudentModel, data: TrainingUsers, batch_size: int = 256) -> None:
    """Fit the profile readout (ridge) and the no-history fallbacks on training users, one chunk at a time.

    The profile fallback is the mean predicted profile; the readout and the inverse target transform
    are affine, so that is the prediction for the mean pooled state (no second pass).
    """
    model.eval()
    readout = model.distill_head is not None and data.profile_dim > 0
    n, state_sum, pooled_sum, xtx, xty = 0, 0.0, 0.0, 0.0, 0.0
    for chunk in data.chunks():
        rows = [i for i, s in enumerate(chunk.sequences) if s]
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            items = pad_left([chunk.sequences[i] for i in idx], model.cfg.body.max_len).to(model.device)
            out = model.encode(items)
            n += len(idx)
            state_sum = state_sum + out["state"].double().sum(0)
            pooled_sum = pooled_sum + out["pooled"].double().sum(0)
            if readout and chunk.profiles is not None and chunk.has_profile[idx].any():
                sel = torch.as_tensor(chunk.has_profile[idx], device=model.device)
                raw = torch.as_tensor(chunk.profiles[idx], device=model.device)[sel]
                a, b = readout_moments(out["pooled"][sel], model.target_transform(raw))
                xtx, xty = xtx + a, xty + b
    if not n:
        return
    model.fallback_state.copy_((state_sum / n).float())
    if readout and isinstance(xtx, torch.Tensor):
        model.distill_head.fit_readout_moments(xtx, xty, model.cfg.distill.readout_ridge)
        mean_pooled = (pooled_sum / n).float().unsqueeze(0)
        model.fallback_profile.copy_(model.target_transform.inverse(model.distill_head.predict(mean_pooled))[0])


def _copy_state(model: StudentModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _length_bucketed_batches(rows: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Batches of users with similar history lengths (less padding), in random order.

    Lengths are jittered by +/-25% before sorting so batch composition changes every epoch.
    """
    jitter = lengths * rng.uniform(0.75, 1.25, size=len(lengths))
    order = rows[np.argsort(jitter, kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for b in rng.permutation(len(batches)):
        yield batches[b]


def _batches(data: TrainingUsers, batch_size: int, max_len: int, rng: np.random.Generator):
    """(chunk, row indices) of one epoch: chunks in the source's order for `rng`, length-bucketed
    batches of the users with 2+ items within each chunk."""
    for chunk in data.chunks(rng):
        rows = np.array([i for i, s in enumerate(chunk.sequences) if len(s) >= 2], dtype=np.int64)
        if not len(rows):
            continue
        lengths = np.array([min(len(chunk.sequences[i]) - 1, max_len) for i in rows])
        for idx in _length_bucketed_batches(rows, lengths, batch_size, rng):
            yield chunk, idx


def fit(
    cfg: StudentConfig,
    data: TrainingUsers,
    valid: tuple[list[list[int]], list[int]] | None = None,
    log: Callable[[str], None] | None = logging.getLogger(__name__).info,
) -> FitResult:
    """Train a student.

    Args:
        cfg: Student config (seed, schedule, distillation variant).
        data: Training histories and profiles.
        valid: (inputs, targets) as item indices for early stopping, or None (train all epochs).
        log: Progress sink (None = silent).

    Returns:
        `FitResult` with the best-validation weights loaded (last weights without `valid`).
    """
    tc, dc = cfg.train, cfg.distill
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    device = resolve_device(tc.device)
    model = StudentModel(len(data.item_index), data.profile_dim, cfg).to(device)
    stats = source_stats(data)
    counts = stats.counts
    if log is not None:
        log(
            f"[{cfg.name}] users {stats.users} items {len(data.item_index)} interactions {stats.interactions} "
            f"profiles {stats.users_with_profile}"
        )
    use_distill = dc.enabled and stats.users_with_profile > 0
    if model.target_transform is not None and stats.users_with_profile > 0:
        model.target_transform.fit_moments(stats.profiles)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.98))
    weighting = LossWeighting()
    distill_epochs = math.ceil(dc.distill_fraction * tc.epochs) if use_distill else 0
    max_len = cfg.body.max_len
    result = FitResult(model=model, data=stats)
    best, best_state, stale = -1.0, None, 0
    if valid is not None:
        valid = _sample_valid(valid, tc.max_valid_users, tc.seed)
        result.popularity_valid = popularity_metrics(counts, valid[1])
    t0 = time.perf_counter()
    # A bar on a terminal only (disable=None); the per-epoch log line is what schedulers see.
    bar = tqdm(total=tc.epochs, desc=f"student {cfg.name}", unit="epoch", disable=None)
    for epoch in range(1, tc.epochs + 1):
        model.train()
        active = epoch <= distill_epochs
        sums = {"loss": 0.0, "rec": 0.0, "distil": 0.0, "beta": 0.0}
        batches = 0
        for chunk, idx in _batches(data, tc.batch_size, max_len, rng):
            seqs = [chunk.sequences[i][-(max_len + 1) :] for i in idx]
            inp = pad_left([s[:-1] for s in seqs], max_len).to(device)
            tgt = pad_left([s[1:] for s in seqs], max_len).to(device)
            layers = model.layers(inp)
            mask = tgt != 0
            l_rec = sampled_next_item_loss(model.head, layers[-1][mask], tgt[mask], cfg.head.negatives)
            l_distil = None
            if use_distill and active and chunk.profiles is not None:
                sel = torch.as_tensor(chunk.has_profile[idx], device=device)
                if int(sel.sum()) > 1:
                    raw = torch.as_tensor(chunk.profiles[idx], device=device)[sel]
                    target = model.target_transform(raw)
                    states, rows_of = model.pooling.for_distillation([x[sel] for x in layers], inp[sel])
                    pred, goal = model.distill_head.pair(states, target)
                    l_distil = distill_loss(pred, goal, dc.loss, dc.temperature, rows_of)
            parts = combine(l_rec, l_distil, dc, weighting, active)
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            sums["loss"] += float(parts.total.detach())
            sums["rec"] += parts.rec
            sums["distil"] += parts.distil if l_distil is not None else 0.0
            sums["beta"] += parts.beta
            batches += 1
        row = {k: v / max(batches, 1) for k, v in sums.items()}
        row.update(epoch=epoch, distilling=float(active), seconds=time.perf_counter() - t0)
        if valid is not None and (epoch % tc.eval_every == 0 or epoch == tc.epochs):
            metrics: RankingMetrics = evaluate(model, valid[0], valid[1])
            score = metrics.as_dict()[tc.select_metric]
            row["valid_" + tc.select_metric] = score
            if score > best:
                best, stale, result.best_epoch = score, 0, epoch
                best_state = _copy_state(model)
                result.best_valid = metrics.as_dict()
            elif epoch > distill_epochs or distill_epochs >= tc.epochs:
                # With a two-phase schedule, patience counts only in the final (L_rec-only)
                # phase; when distillation spans all epochs it counts from the start.
                stale += 1
        result.history.append(row)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k == "rec" or k.startswith("valid_")}, refresh=False)
        if log is not None:
            extra = (
                f" valid {tc.select_metric} {row['valid_' + tc.select_metric]:.4f}"
                if "valid_" + tc.select_metric in row
                else ""
            )
            dist = f" distil {row['distil']:.4f} beta {row['beta']:.3g}" if active and use_distill else ""
            log(f"[{cfg.name}] epoch {epoch}/{tc.epochs} rec {row['rec']:.4f}{dist}{extra} ({row['seconds']:.0f}s)")
        if tc.patience is not None and stale >= tc.patience:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if (
        result.best_valid is not None
        and result.best_valid[tc.select_metric] < result.popularity_valid[tc.select_metric]
    ):
        # No epoch beat most-popular on validation: serve popularity's ranking (the user representation,
        # profile head and drift still come from the best epoch), counting the held-out items too: they
        # are the newest interactions, which the served ranking should know.
        everything = counts + np.bincount(np.asarray(valid[1]) - 1, minlength=len(counts))
        model.head.rank_by_popularity(torch.as_tensor(everything, device=device))
        result.ranks_by_popularity = True
        result.best_valid = result.popularity_valid
    finalize(model, data)
    result.seconds = time.perf_counter() - t0
    return result
