"""Where training reads its users from: in chunks, so memory is bounded by a chunk, not by the users.

`fit` and `finalize` read a `TrainingUsers`: the item index, the profile width, and an
iterator of `UserChunk`s (index-encoded histories and profile vectors of some users).
`TrainingData` (training.py) is the in-memory source: one chunk. `ParquetUsers` streams a
Parquet dataset (local path or URI) record batch by record batch, files in a new random
order each epoch, as the Spark job writes it. `HeldOutLast` wraps any source and holds out
each long-enough user's last item for validation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from student.data import ItemIndex
from student.items import ItemFeatures

__all__ = ["UserChunk", "TrainingUsers", "ParquetUsers", "HeldOutLast"]


@dataclass(frozen=True)
class UserChunk:
    """Some training users.

    Attributes:
        users: n user ids.
        sequences: n index sequences (oldest -> newest), only what training may see.
        profiles: [n, P] float32 raw profile embeddings (rows of users without one are 0), or None.
        has_profile: [n] bool.
    """

    users: list[str]
    sequences: list[list[int]]
    profiles: np.ndarray | None
    has_profile: np.ndarray


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
        columns = ["user_id", "item_ids"] + (["profile_embedding"] if self._profile_dim else [])
        for fragment in fragments:
            for batch in fragment.to_batches(columns=columns, batch_size=self.batch_rows):
                if not batch.num_rows:
                    continue
                data = batch.to_pydict()
                profiles, has = _profile_matrix(
                    data.get("profile_embedding", [None] * batch.num_rows), self.profile_dim
                )
                yield UserChunk(
                    [str(u) for u in data["user_id"]],
                    [self.item_index.encode(items or []) for items in data["item_ids"]],
                    profiles,
                    has,
                )


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
