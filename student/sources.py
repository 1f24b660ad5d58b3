"""Where training reads its users from: in chunks, so memory is bounded by a chunk, not by the users.

`fit` and `finalize` read a `TrainingUsers`: the item index, the profile width, and an
iterator of `UserChunk`s (index-encoded histories and profile vectors of some users).
`TrainingData` (training.py) is the in-memory source: one chunk. `ParquetUsers` streams a
Parquet dataset (local path or URI) record batch by record batch, files in a new random
order each epoch, as the Spark job writes it. `HeldOutLast` wraps any source and holds out
each long-enough user's last item for validation.

The deployment guard (student/guard.py) validates in time instead: `interaction_time_quantile`
picks a validation cutoff, `BeforeCutoff` is the source cut there, and `after_cutoff_targets`
gives, for every user with items on both sides, the history before it and the first item after
it. `Cached` keeps a small source in memory, so the many passes of a guarded training read it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from profile_features.student.data import ItemIndex
from profile_features.student.items import ItemFeatures

__all__ = [
    "UserChunk",
    "TrainingUsers",
    "ParquetUsers",
    "HeldOutLast",
    "Cached",
    "BeforeCutoff",
    "ValidationTargets",
    "interaction_time_quantile",
    "after_cutoff_targets",
    "require_times",
]


@dataclass(frozen=True)
class UserChunk:
    """Some training users.

    Attributes:
        users: n user ids.
        sequences: n index sequences (oldest -> newest), only what training may see.
        profiles: [n, P] float32 raw profile embeddings (rows of users without one are 0), or None.
        has_profile: [n] bool.
        times: n [len(sequence)] int64 interaction times (order-preserving, e.g. epoch microseconds),
            aligned with `sequences`; None when the source has none (then no temporal validation).
    """

    users: list[str]
    sequences: list[list[int]]
    profiles: np.ndarray | None
    has_profile: np.ndarray
    times: list[np.ndarray] | None = None


class TrainingUsers(Protocol):
    """What training reads: every user once per `chunks()` pass, and the items' content."""

    item_index: ItemIndex
    item_features: ItemFeatures | None  # text embeddings / semantic-ID codes of item_index's items

    @property
    def profile_dim(self) -> int: ...

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[UserChunk]:
        """One pass over all users; `rng` (when given) may reorder the chunks."""
        ...


def _profile_matrix(values, dim: int) -> tuple[np.ndarray | None, np.ndarray]:
    """[n, dim] float32 rows (0 where missing) and the [n] mask of rows that have one."""
    has = np.array([v is not None and len(v) > 0 for v in values], dtype=bool)
    if not dim:
        return None, np.zeros(len(values), dtype=bool)
    matrix = np.zeros((len(values), dim), dtype=np.float32)
    for row in np.flatnonzero(has):
        matrix[row] = np.asarray(values[row], dtype=np.float32)
    return matrix, has


class ParquetUsers:
    """Users from a Parquet dataset with `user_id`, `item_ids` (oldest -> newest) and, optionally,
    `item_times` (int64 per item, e.g. epoch microseconds: what temporal validation reads) and
    `profile_embedding`, read `batch_rows` rows at a time.

    Args:
        uri: the dataset (folder of part files), local path or URI (`storage.filesystem` resolves it).
        item_index: the index training uses (items outside it are skipped, as `ItemIndex.encode` does).
        profile_dim: width of `profile_embedding` (0: no profiles).
        batch_rows: users per chunk; memory is one chunk of histories.
        item_features: the content of `item_index`'s items (text embeddings, semantic-ID codes).
    """

    def __init__(
        self,
        uri: str,
        item_index: ItemIndex,
        profile_dim: int = 0,
        batch_rows: int = 4096,
        item_features: ItemFeatures | None = None,
    ) -> None:
        self.uri = uri
        self.item_index = item_index
        self._profile_dim = profile_dim
        self.batch_rows = batch_rows
        self.item_features = item_features

    @property
    def profile_dim(self) -> int:
        return self._profile_dim

    def _dataset(self):
        import pyarrow.dataset as ds

        from profile_features import storage

        filesystem, path = storage.filesystem(self.uri)
        return ds.dataset(path, filesystem=filesystem, format="parquet")

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[UserChunk]:
        fragments = sorted(self._dataset().get_fragments(), key=lambda f: f.path)
        if rng is not None:
            fragments = [fragments[i] for i in rng.permutation(len(fragments))]
        dataset = self._dataset()
        timed = "item_times" in dataset.schema.names
        columns = ["user_id", "item_ids"] + (["item_times"] if timed else [])
        columns += ["profile_embedding"] if self._profile_dim else []
        for fragment in fragments:
            for batch in fragment.to_batches(columns=columns, batch_size=self.batch_rows):
                if not batch.num_rows:
                    continue
                data = batch.to_pydict()
                profiles, has = _profile_matrix(
                    data.get("profile_embedding", [None] * batch.num_rows), self.profile_dim
                )
                users = [str(u) for u in data["user_id"]]
                if not timed:
                    sequences = [self.item_index.encode(items or []) for items in data["item_ids"]]
                    yield UserChunk(users, sequences, profiles, has)
                    continue
                encoded = [
                    self.item_index.encode_timed(items or [], _times(times, items, self.uri, user))
                    for user, items, times in zip(users, data["item_ids"], data["item_times"])
                ]
                yield UserChunk(users, [e[0] for e in encoded], profiles, has, [e[1] for e in encoded])


def _times(times, items, uri: str, user: str) -> list:
    if times is None or len(times) != len(items or []):
        raise ValueError(
            f"{uri}: user {user!r} has {len(items or [])} item_ids but "
            f"{'no' if times is None else len(times)} item_times; they must align one to one"
        )
    return times


class HeldOutLast:
    """`source` with the last item of every user with at least 3 held out for validation.

    Training sees the rest of each history; `validation()` gives (inputs, targets) for at most
    `limit` held-out users, a uniform sample (reservoir, seeded) taken in one pass.
    """

    def __init__(self, source: TrainingUsers, limit: int = 20_000, seed: int = 0) -> None:
        self.source = source
        self.item_index = source.item_index
        self.item_features = getattr(source, "item_features", None)
        self.limit = limit
        self.seed = seed

    @property
    def profile_dim(self) -> int:
        return self.source.profile_dim

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[UserChunk]:
        for chunk in self.source.chunks(rng):
            sequences = [s[:-1] if len(s) >= 3 else s for s in chunk.sequences]
            yield UserChunk(chunk.users, sequences, chunk.profiles, chunk.has_profile)

    def validation(self) -> tuple[list[list[int]], list[int]] | None:
        """(inputs, targets) as item indices, in the source's order; None when nobody has 3 items."""
        rng = np.random.default_rng(self.seed)
        kept: list[tuple[list[int], int]] = []
        seen = 0
        for chunk in self.source.chunks():
            for sequence in chunk.sequences:
                if len(sequence) < 3:
                    continue
                if len(kept) < self.limit:
                    kept.append((sequence[:-1], sequence[-1]))
                else:
                    slot = int(rng.integers(0, seen + 1))
                    if slot < self.limit:
                        kept[slot] = (sequence[:-1], sequence[-1])
                seen += 1
        if not kept:
            return None
        return [inputs for inputs, _ in kept], [target for _, target in kept]


class Cached:
    """`source` read once into memory when it holds at most `max_interactions` interactions (else
    streamed as before): a small dataset's many passes (statistics, validation, every epoch of every
    variant) then cost no Parquet reads. Chunk order is still shuffled per `rng`."""

    def __init__(self, source: TrainingUsers, max_interactions: int) -> None:
        self.source = source
        self.item_index = source.item_index
        self.item_features = getattr(source, "item_features", None)
        self._chunks: list[UserChunk] | None = None
        held, total = [], 0
        for chunk in source.chunks():
            total += sum(len(s) for s in chunk.sequences)
            if total > max_interactions:
                held = None
                break
            held.append(chunk)
        self._chunks = held

    @property
    def profile_dim(self) -> int:
        return self.source.profile_dim

    @property
    def in_memory(self) -> bool:
        return self._chunks is not None

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[UserChunk]:
        if self._chunks is None:
            yield from self.source.chunks(rng)
            return
        order = range(len(self._chunks)) if rng is None else rng.permutation(len(self._chunks))
        for i in order:
            yield self._chunks[i]


def require_times(chunk: UserChunk) -> list[np.ndarray]:
    """The chunk's interaction times; raises, naming the column, when the source has none."""
    if chunk.times is None:
        raise ValueError(
            "temporal validation needs each interaction's time: the training users carry no item times "
            "(Parquet column item_times, written by the train_student job; frames need a timestamp column)"
        )
    return chunk.times


class BeforeCutoff:
    """`source` with only the interactions strictly before `cutoff` (a time in the source's units);
    users left with nothing are dropped."""

    def __init__(self, source: TrainingUsers, cutoff: int) -> None:
        self.source = source
        self.cutoff = int(cutoff)
        self.item_index = source.item_index
        self.item_features = getattr(source, "item_features", None)

    @property
    def profile_dim(self) -> int:
        return self.source.profile_dim

    def chunks(self, rng: np.random.Generator | None = None) -> Iterator[UserChunk]:
        for chunk in self.source.chunks(rng):
            times = require_times(chunk)
            kept = [int(np.searchsorted(t, self.cutoff, side="left")) for t in times]
            rows = [i for i, k in enumerate(kept) if k]
            if not rows:
                continue
            yield UserChunk(
                [chunk.users[i] for i in rows],
                [chunk.sequences[i][: kept[i]] for i in rows],
                None if chunk.profiles is None else chunk.profiles[rows],
                chunk.has_profile[rows],
                [times[i][: kept[i]] for i in rows],
            )


def interaction_time_quantile(source: TrainingUsers, q: float, sample: int = 1_000_000, seed: int = 0) -> int:
    """The `q` quantile of the source's interaction times, from a uniform sample of at most `sample`
    times (bottom-k of random keys: bounded memory, exact below that). Raises when there are none."""
    rng = np.random.default_rng(seed)
    times, keys = np.empty(0, dtype=np.int64), np.empty(0)
    for chunk in source.chunks():
        batch = [t for t in require_times(chunk) if len(t)]
        if not batch:
            continue
        times = np.concatenate([times, *batch])
        keys = np.concatenate([keys, rng.random(len(times) - len(keys))])
        if len(times) > sample:
            keep = np.argpartition(keys, sample)[:sample]
            times, keys = times[keep], keys[keep]
    if not len(times):
        raise ValueError("no interactions to pick a validation cutoff from")
    return int(np.quantile(times, q, method="lower"))


@dataclass(frozen=True)
class ValidationTargets:
    """Next items after a cutoff, as the deployed model meets them.

    Attributes:
        users: V user ids (a seeded uniform sample when there were more).
        inputs: V histories (item indices) before the cutoff, oldest -> newest.
        targets: V lists of the first `targets_per_user` items at or after the cutoff.
        eligible: users with items on both sides of the cutoff before sampling.
    """

    users: list[str]
    inputs: list[list[int]]
    targets: list[list[int]]
    eligible: int

    def pairs(self) -> tuple[list[list[int]], list[int], np.ndarray]:
        """(inputs, targets, owner) flattened to one row per target; owner [R] is the user's row."""
        rows = [(i, t) for i, targets in enumerate(self.targets) for t in targets]
        return [self.inputs[i] for i, _ in rows], [t for _, t in rows], np.array([i for i, _ in rows], dtype=np.int64)


def after_cutoff_targets(
    source: TrainingUsers, cutoff: int, targets_per_user: int = 1, limit: int = 20_000, seed: int = 0
) -> ValidationTargets:
    """For every user with interactions before `cutoff` and at or after it: the history before it and
    the first `targets_per_user` items from it (a reservoir sample of `limit` users, seeded)."""
    rng = np.random.default_rng(seed)
    kept: list[tuple[str, list[int], list[int]]] = []
    eligible = 0
    for chunk in source.chunks():
        for user, sequence, times in zip(chunk.users, chunk.sequences, require_times(chunk)):
            k = int(np.searchsorted(times, cutoff, side="left"))
            if k == 0 or k == len(sequence):
                continue
            row = (user, sequence[:k], sequence[k : k + targets_per_user])
            if len(kept) < limit:
                kept.append(row)
            else:
                slot = int(rng.integers(0, eligible + 1))
                if slot < limit:
                    kept[slot] = row
            eligible += 1
    return ValidationTargets([r[0] for r in kept], [r[1] for r in kept], [r[2] for r in kept], eligible)
