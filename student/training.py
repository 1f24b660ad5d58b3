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

from profile_features.student.config import StudentConfig
from profile_features.student.data import ItemIndex, pad_left
from profile_features.student.evaluation import metrics_from_ranks, target_ranks
from profile_features.student.heads import ProfileMoments, readout_moments
from profile_features.student.items import ItemFeatures
from profile_features.student.losses import LossWeighting, combine, distill_loss, neighbour_loss, sampled_next_item_loss
from profile_features.student.model import StudentModel
from profile_features.student.neighbours import NeighbourTeacher, profile_neighbours
from profile_features.student.sources import TrainingUsers, UserChunk

__all__ = [
    "TrainingData",
    "build_training_data",
    "SourceStats",
    "source_stats",
    "FitResult",
    "resolve_device",
    "item_counts",
    "popularity_metrics",
    "popularity_ranks",
    "build_model",
    "epoch_batch_size",
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
        item_features: the items' text embeddings and semantic-ID codes (None: IDs only).
        times: U [len(sequence)] int64 interaction times aligned with `sequences`, or None.
    """

    item_index: ItemIndex
    users: list[str]
    sequences: list[list[int]]
    profiles: np.ndarray | None
    has_profile: np.ndarray
    item_features: ItemFeatures | None = None
    times: list[np.ndarray] | None = None

    @property
    def profile_dim(self) -> int:
        return 0 if self.profiles is None else int(self.profiles.shape[1])

    def chunks(self, rng: np.random.Generator | None = None):
        """Everything as one chunk (a `TrainingUsers` source)."""
        yield UserChunk(self.users, self.sequences, self.profiles, self.has_profile, self.times)


def build_training_data(
    histories: dict[str, list[str]],
    item_index: ItemIndex,
    profiles: dict[str, np.ndarray] | None = None,
    item_features: ItemFeatures | None = None,
    times: dict[str, np.ndarray] | None = None,
) -> TrainingData:
    """Encode histories with `item_index` and align profiles to users.

    Args:
        histories: user -> item ids (oldest -> newest), training part only.
        item_index: Index covering the training items (and, with item features, any catalogue item
            to be ranked: those no history contains get their semantic views alone).
        profiles: user -> [P] profile embedding written from that same training part.
        item_features: content of `item_index`'s items (`student.items.item_features_from_frames`).
        times: user -> [len(history)] int64 interaction times (`student.data.user_timelines`), which
            temporal validation needs; None: no times.
    """
    users = sorted(histories)
    seq_times = None
    if times is None:
        seqs = [item_index.encode(histories[u]) for u in users]
    else:
        encoded = [item_index.encode_timed(histories[u], times[u]) for u in users]
        seqs, seq_times = [e[0] for e in encoded], [e[1] for e in encoded]
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
    return TrainingData(item_index, users, seqs, mat, has, item_features, seq_times)


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
    best_ranks: np.ndarray | None = None  # [R] 0-based ranks of the validation targets at the best epoch
    distill_until: int = 0  # the last epoch that distilled (what a refit replays)
    valid_seconds: float = 0.0  # of `seconds`, spent validating


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def item_counts(data: TrainingUsers) -> np.ndarray:
    """[N] training interactions per item index 1..N (position j is index j + 1)."""
    return source_stats(data).counts


def popularity_ranks(counts: np.ndarray, targets: list[int]) -> np.ndarray:
    """[R] most-popular's 0-based full-ranking ranks of `targets` (item indices), ties counted half."""
    target_counts = counts[np.asarray(targets, dtype=np.int64) - 1]
    order = np.sort(counts)
    higher = len(counts) - np.searchsorted(order, target_counts, side="right")
    ties = np.searchsorted(order, target_counts, side="right") - np.searchsorted(order, target_counts, side="left") - 1
    return higher + ties / 2


def popularity_metrics(counts: np.ndarray, targets: list[int]) -> dict[str, float]:
    """Most-popular's full-ranking metrics on `targets` (item indices), ties counted half."""
    return metrics_from_ranks(popularity_ranks(counts, targets)).as_dict()


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
    seen = model.items.seen[1:]
    if seen.any() and not seen.all() and float(model.head.scale) and not model.head.content_bias:
        # Without content, an item training never saw scores as an average item would (by popularity it
        # keeps no count); with content it takes the new-item bias the head learnt.
        model.head.bias[~seen] = model.head.bias[seen].mean()
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


def _crop(sequence: list[int], rng: np.random.Generator) -> list[int]:
    """The newest m + 1 items (m inputs, m targets), m log-uniform in 1..len - 1."""
    inputs = len(sequence) - 1
    m = int(np.clip(np.rint(np.exp(rng.uniform(0.0, np.log(inputs)))), 1, inputs)) if inputs > 1 else inputs
    return sequence[-(m + 1) :]


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


def build_model(cfg: StudentConfig, data: TrainingUsers, stats: SourceStats) -> StudentModel:
    """The untrained model for `data`: item views filled with the items' content, seen items marked."""
    features = getattr(data, "item_features", None)
    views = cfg.content_views  # text auto: on when the data brings item text vectors (and the head is tied)
    text_dim = features.text_dim if features is not None and views.text is not False else 0
    code_sizes = features.code_sizes if features is not None and views.sid else ()
    if views.text is True and not text_dim:
        raise ValueError(
            "items.text is on, but the training data has no item text embeddings (pass them, e.g. "
            "`python -m profile_features.student.train --items`, or set items.text to auto or false)"
        )
    if views.sid and not code_sizes:
        raise ValueError("items.sid is on, but the training data has no semantic-ID codes")
    model = StudentModel(len(data.item_index), data.profile_dim, cfg, text_dim, code_sizes)
    if model.items.semantic:
        model.items.set_features(features)
    model.items.set_seen(stats.counts)
    return model


class _Step:
    """One training batch's loss: next-item CE, profile distillation, neighbour distillation."""

    def __init__(self, cfg: StudentConfig, model: StudentModel, stats: SourceStats, device: torch.device) -> None:
        self.cfg, self.model, self.device = cfg, model, device
        self.use_distill = cfg.distill.enabled and stats.users_with_profile > 0
        self.use_neighbours = cfg.neighbours.enabled and stats.users_with_profile > 1
        self.candidates = model.items.seen[1:]  # the softmax runs over items training has seen
        self.weighting = LossWeighting()
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self._profile_mean = stats.profiles.mean if stats.profiles is not None else None
        self._teacher_for: UserChunk | None = None
        self._teacher: NeighbourTeacher | None = None

    def teacher(self, chunk: UserChunk) -> NeighbourTeacher | None:
        """The chunk's neighbour teacher, made once per chunk pass (the model's states at that time)."""
        if not self.use_neighbours or chunk.profiles is None:
            return None
        if chunk is not self._teacher_for:
            k = self.cfg.neighbours.neighbours
            neighbours = profile_neighbours(chunk.profiles, chunk.has_profile, k, self._profile_mean)
            self._teacher_for, self._teacher = chunk, NeighbourTeacher(self.model, chunk, neighbours)
        return self._teacher

    def loss(self, chunk: UserChunk, idx: np.ndarray, rng: np.random.Generator, active: bool):
        """(the `CombinedLoss` parts, the total to minimise, the neighbour loss or None) for chunk rows `idx`."""
        cfg, model, device = self.cfg, self.model, self.device
        max_len = cfg.body.max_len
        seqs = [chunk.sequences[i][-(max_len + 1) :] for i in idx]
        if cfg.train.crop_prob > 0:
            seqs = [_crop(s, rng) if rng.random() < cfg.train.crop_prob else s for s in seqs]
        inp = pad_left([s[:-1] for s in seqs], max_len).to(device)
        tgt = pad_left([s[1:] for s in seqs], max_len).to(device)
        id_on = model.items.id_mask(cfg.items.id_dropout, self.generator)
        layers = model.layers(inp, id_on)
        mask = tgt != 0
        l_rec = sampled_next_item_loss(
            model.head, layers[-1][mask], tgt[mask], cfg.head.negatives, id_on, self.candidates
        )
        l_distil = None
        if self.use_distill and active and chunk.profiles is not None:
            sel = torch.as_tensor(chunk.has_profile[idx], device=device)
            if int(sel.sum()) > 1:
                raw = torch.as_tensor(chunk.profiles[idx], device=device)[sel]
                target = model.target_transform(raw)
                states, rows_of = model.pooling.for_distillation([x[sel] for x in layers], inp[sel])
                pred, goal = model.distill_head.pair(states, target)
                l_distil = distill_loss(pred, goal, cfg.distill.loss, cfg.distill.temperature, rows_of)
        parts = combine(l_rec, l_distil, cfg.distill, self.weighting, active)
        total, l_nbr = parts.total, None
        teacher = self.teacher(chunk)
        if teacher is not None:
            goal, has = teacher.teachers(idx)
            limit = cfg.neighbours.max_history
            if limit is not None:
                has &= torch.as_tensor([len(s) - 1 <= limit for s in seqs], device=device)
            if bool(has.any()):
                l_nbr = neighbour_loss(layers[-1][:, -1][has], goal[has])
                total = total + cfg.neighbours.weight * l_nbr
        return parts, total, l_nbr


def epoch_batch_size(tc, users: int) -> int:
    """Users per optimiser step: `tc.batch_size`, smaller on small data so that an epoch has at least
    `tc.min_steps_per_epoch` steps (never below 8 users)."""
    return max(1, min(tc.batch_size, max(8, -(-users // tc.min_steps_per_epoch))))


def fit(
    cfg: StudentConfig,
    data: TrainingUsers,
    valid: tuple[list[list[int]], list[int]] | None = None,
    log: Callable[[str], None] | None = logging.getLogger(__name__).info,
    stop_after: int | None = None,
    popularity_fallback: bool = True,
    distill_until: int | None = None,
) -> FitResult:
    """Train a student.

    Args:
        cfg: Student config (seed, schedule, item views, distillation variants).
        data: Training histories and profiles (and, for the semantic item views, `item_features`).
        valid: (inputs, targets) as item indices for early stopping, or None (train all epochs).
        log: Progress sink (None = silent).
        stop_after: stop after this many epochs, the schedule (distillation phase) still laid out
            for `train.epochs`: how a refit repeats a validated run's first epochs.
        popularity_fallback: when no epoch beats most-popular on `valid`, rank by popularity (the
            deployment guard makes that call itself, with a confidence bound, and turns this off).
        distill_until: the last distillation epoch (default: `distill_fraction` x `train.epochs`); a
            refit passes the validated run's `FitResult.distill_until`.

    Schedule: distillation for the first epochs, then L_rec alone (two phases), each ended by
    patience: when validation stalls during distillation (no gain above `min_delta` for `patience`
    evaluations) the run moves on to L_rec alone; a stall there ends it. So a phase lasts as long as
    it helps, not a fixed share of an epoch cap (on small data the cap's 30% was most of a run).
    With distillation over every epoch (distill_fraction 1) a stall ends the run.

    Returns:
        `FitResult` with the best-validation weights loaded (last weights without `valid`).
    """
    tc, dc = cfg.train, cfg.distill
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    device = resolve_device(tc.device)
    stats = source_stats(data)
    counts = stats.counts
    model = build_model(cfg, data, stats).to(device)
    batch_size = epoch_batch_size(tc, stats.users)
    if log is not None:
        log(
            f"[{cfg.name}] users {stats.users} items {len(data.item_index)} (seen {int((counts > 0).sum())}) "
            f"interactions {stats.interactions} profiles {stats.users_with_profile} batch {batch_size}"
        )
    if model.target_transform is not None and stats.users_with_profile > 0:
        model.target_transform.fit_moments(stats.profiles)
    step = _Step(cfg, model, stats, device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.98))
    distill_epochs = math.ceil(dc.distill_fraction * tc.epochs) if step.use_distill else 0
    two_phase = 0 < distill_epochs < tc.epochs
    if distill_until is not None and step.use_distill:
        distill_epochs = distill_until
    result = FitResult(model=model, data=stats, distill_until=distill_epochs)
    best, best_state, stale = -1.0, None, 0
    if valid is not None:
        valid = _sample_valid(valid, tc.max_valid_users, tc.seed)
        result.popularity_valid = popularity_metrics(counts, valid[1])
    t0 = time.perf_counter()
    last = min(tc.epochs, stop_after or tc.epochs)
    # A bar on a terminal only (disable=None); the per-epoch log line is what schedulers see.
    bar = tqdm(total=last, desc=f"student {cfg.name}", unit="epoch", disable=None)
    for epoch in range(1, last + 1):
        model.train()
        active = epoch <= distill_epochs
        sums = {"loss": 0.0, "rec": 0.0, "distil": 0.0, "beta": 0.0, "neighbour": 0.0}
        batches = 0
        for chunk, idx in _batches(data, batch_size, cfg.body.max_len, rng):
            parts, total, l_nbr = step.loss(chunk, idx, rng, active)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            sums["loss"] += float(total.detach())
            sums["rec"] += parts.rec
            sums["distil"] += parts.distil if np.isfinite(parts.distil) and active else 0.0
            sums["beta"] += parts.beta
            sums["neighbour"] += float(l_nbr.detach()) if l_nbr is not None else 0.0
            batches += 1
        row = {k: v / max(batches, 1) for k, v in sums.items()}
        row.update(epoch=epoch, distilling=float(active), seconds=time.perf_counter() - t0)
        if valid is not None and (epoch % tc.eval_every == 0 or epoch == last):
            started = time.perf_counter()
            ranks = target_ranks(model, valid[0], valid[1])
            metrics = metrics_from_ranks(ranks).as_dict()
            result.valid_seconds += time.perf_counter() - started
            score = metrics[tc.select_metric]
            row["valid_" + tc.select_metric] = score
            # Patience restarts only on a gain above `min_delta` (relative): a run that creeps up by
            # noise-sized steps stops; the best weights are kept whatever the size of the gain.
            enough = score > best * (1.0 + tc.min_delta) if best > 0 else score > best
            if score > best:
                best, result.best_epoch, result.best_ranks = score, epoch, ranks
                best_state = _copy_state(model)
                result.best_valid = metrics
            stale = 0 if enough else stale + 1
        result.history.append(row)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k == "rec" or k.startswith("valid_")}, refresh=False)
        if log is not None:
            extra = (
                f" valid {tc.select_metric} {row['valid_' + tc.select_metric]:.4f}"
                if "valid_" + tc.select_metric in row
                else ""
            )
            dist = f" distil {row['distil']:.4f} beta {row['beta']:.3g}" if active and step.use_distill else ""
            nbr = f" neighbour {row['neighbour']:.4f}" if step.use_neighbours else ""
            log(f"[{cfg.name}] epoch {epoch}/{last} rec {row['rec']:.4f}{dist}{nbr}{extra} ({row['seconds']:.0f}s)")
        if tc.patience is not None and stale >= tc.patience and epoch >= tc.min_epochs:
            if not (two_phase and active and epoch < distill_epochs):
                break
            # Distillation stopped helping: L_rec alone from the next epoch, patience afresh.
            distill_epochs, stale = epoch, 0
            result.distill_until = epoch
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if (
        popularity_fallback
        and result.best_valid is not None
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
