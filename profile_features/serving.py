"""Fast online scoring: one read of the user's vectors, candidates scored in memory.

The on-demand view computes `profile_item_similarity` inside Feast by reading every
candidate's item vector from the online store on each request. For ranking 100-1,000
candidates that is most of the request's cost. `SemanticScorer` keeps the item
vectors in memory (as one normalised float32 matrix), reads only the user's vectors
per request, and scores all candidates with one matrix-vector product. It reloads
the item matrix when the item view has been materialized again (its newest
materialization interval changes), checked at most every `check_every_s` seconds.

Both paths return the same values (tested to 1e-5), for any stored vector: one whose components
are not all finite float32 values (NaN, inf, or beyond float32's range, ~3.4e38) is malformed in
both and scores NaN; vectors with huge (1e30) or tiny (1e-40) components are scaled by their
largest component before normalising, so their squares cannot overflow or underflow float32.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ItemMatrix", "SemanticScorer", "vector_width"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemMatrix:
    """Normalised item vectors. vectors: (n_items, dim) float32; rows of missing items are 0.

    `malformed`: ids whose stored vector had another width or a non-finite value (scored NaN,
    as a missing vector is; counted so a bad row is seen, not silently zero).
    """

    version: str
    index: dict[str, int]
    vectors: np.ndarray
    malformed: tuple[str, ...] = ()


def _usable(vector, width: int) -> bool:
    """`width` components, each a finite float32 (the on-demand view applies the same rule)."""
    if vector is None or len(vector) != width:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.asarray(vector, dtype=np.float64).astype(np.float32)).all())


def vector_width(rows: Sequence, declared: int | None = None) -> int:
    """The declared width, else the commonest length among non-empty rows (one bad row cannot set it)."""
    if declared:
        return int(declared)
    lengths = pd.Series([len(v) for v in rows if v is not None and len(v) > 0], dtype="int64")
    return int(lengths.mode().min()) if len(lengths) else 0


def _normalise(matrix: np.ndarray) -> np.ndarray:
    """Unit rows (zero rows stay zero). Each row is divided by its largest |component| first: the
    direction is the same, and the squares in the norm can neither overflow (components of 1e20 and
    more) nor underflow (1e-20 and less) float32."""
    scale = np.abs(matrix).max(axis=1, keepdims=True) if matrix.size else np.zeros((len(matrix), 1), matrix.dtype)
    scaled = np.divide(matrix, scale, out=np.zeros_like(matrix), where=scale > 0)
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    return np.divide(scaled, norms, out=np.zeros_like(scaled), where=norms > 0)


class SemanticScorer:
    """User x item similarities for a ranking request, without an on-demand view.

    Args:
        store: a `feast.FeatureStore`.
        item_ids: the candidate universe (e.g. the catalogue) to keep in memory.
        user_vectors: user feature refs to read per request, each scored against the
            item vector; output column i is `similarity_names[i]`.
        item_vector: the item feature ref.
        width: the vectors' width (the encoder's dimension). Default: the field's `vector_length`
            when the view declares one, else the commonest width among the stored item vectors.
            A vector of another width, or with a NaN or inf, scores NaN and is counted
            (`items().malformed`, `malformed_user_vectors`) and logged.
    """

    def __init__(
        self,
        store,
        item_ids: Sequence[str],
        user_vectors: Sequence[str] = ("user_profile:profile_embedding",),
        similarity_names: Sequence[str] = ("profile_item_similarity",),
        item_vector: str = "item_text:item_text_embedding",
        user_key: str = "user_id",
        item_key: str = "item_id",
        check_every_s: float = 30.0,
        batch_size: int = 2000,
        width: int | None = None,
    ):
        if len(user_vectors) != len(similarity_names):
            raise ValueError("user_vectors and similarity_names must have the same length")
        self.store = store
        self.item_ids = list(item_ids)
        self.user_vectors = list(user_vectors)
        self.similarity_names = list(similarity_names)
        self.item_vector = item_vector
        self.user_key, self.item_key = user_key, item_key
        self.check_every_s = check_every_s
        self.batch_size = batch_size
        self.width = width
        self.malformed_user_vectors = 0  # user vectors of the wrong width or non-finite, since start
        self._lock = threading.Lock()
        self._items: ItemMatrix | None = None
        self._checked_at = 0.0

    # -- item matrix -----------------------------------------------------------------
    def item_version(self) -> str:
        """The item view's newest materialization end (changes when it is re-materialized)."""
        view_name = self.item_vector.split(":")[0]
        view = self.store.get_feature_view(view_name, allow_registry_cache=True)
        intervals = view.materialization_intervals
        return max(end for _, end in intervals).isoformat() if intervals else "never-materialized"

    def _load_items(self, version: str) -> ItemMatrix:
        feature = self.item_vector.split(":")[1]
        rows = []
        for start in range(0, len(self.item_ids), self.batch_size):
            chunk = self.item_ids[start : start + self.batch_size]
            values = self.store.get_online_features(
                features=[self.item_vector], entity_rows=[{self.item_key: i} for i in chunk]
            ).to_dict()[feature]
            rows.extend(values)
        dim = vector_width(rows, self.width or self._declared_width())
        matrix = np.zeros((len(rows), dim), dtype=np.float32)
        malformed = []
        for i, vector in enumerate(rows):
            if _usable(vector, dim):
                matrix[i] = vector
            elif vector is not None and len(vector) > 0:
                malformed.append(self.item_ids[i])
        if malformed:
            log.warning(
                "%s: %d item vector(s) are not %d finite floats and score NaN (first: %s)",
                self.item_vector,
                len(malformed),
                dim,
                malformed[:5],
            )
        return ItemMatrix(
            version=version,
            index={item: i for i, item in enumerate(self.item_ids)},
            vectors=_normalise(matrix),
            malformed=tuple(malformed),
        )

    def _declared_width(self) -> int | None:
        """`vector_length` of the item vector's field in the feature view, when the view sets one."""
        view_name, feature = self.item_vector.split(":")
        view = self.store.get_feature_view(view_name, allow_registry_cache=True)
        field = next((f for f in view.schema if f.name == feature), None)
        return getattr(field, "vector_length", 0) or None

    def items(self) -> ItemMatrix:
        """The in-memory item matrix, reloaded if the item view was re-materialized."""
        now = time.monotonic()
        if self._items is not None and now - self._checked_at < self.check_every_s:
            return self._items
        with self._lock:
            if self._items is None or now - self._checked_at >= self.check_every_s:
                self.store.refresh_registry()
                version = self.item_version()
                if self._items is None or self._items.version != version:
                    self._items = self._load_items(version)
                self._checked_at = now
        return self._items

    # -- request path ------------------------------------------------------------------
    def score(self, user_id: str, candidates: Sequence[str]) -> pd.DataFrame:
        """Similarities of one user to each candidate, in candidate order.

        Returns:
            item_id column plus one float64 column per similarity name; NaN where the
            user's or the item's vector is missing (as the on-demand view gives).
        """
        items = self.items()
        out = pd.DataFrame({self.item_key: pd.Series(list(candidates), dtype=object)})
        if not len(candidates):
            return out.assign(**{name: pd.Series(dtype="float64") for name in self.similarity_names})
        user = self.store.get_online_features(
            features=self.user_vectors, entity_rows=[{self.user_key: user_id}]
        ).to_dict()
        rows = np.array([items.index.get(c, -1) for c in candidates], dtype=np.int64)
        known = rows >= 0
        candidate_vectors = np.zeros((len(candidates), items.vectors.shape[1]), dtype=np.float32)
        candidate_vectors[known] = items.vectors[rows[known]]
        item_present = known & (np.abs(candidate_vectors).sum(axis=1) > 0)
        for ref, name in zip(self.user_vectors, self.similarity_names):
            vector = user[ref.split(":")[1]][0]
            scores = np.full(len(candidates), np.nan)
            if vector is not None and len(vector) > 0 and not _usable(vector, items.vectors.shape[1]):
                self.malformed_user_vectors += 1
                log.warning("%s of user %s is not %d finite floats: scored NaN", ref, user_id, items.vectors.shape[1])
            elif vector is not None and len(vector) > 0:
                u = _normalise(np.asarray(vector, dtype=np.float32)[None, :])[0]
                if u.any():
                    scores[item_present] = candidate_vectors[item_present] @ u
            out[name] = scores
        return out

    def ranking_features(self, user_id: str, candidates: Sequence[str], scalar_features: Sequence[str]) -> pd.DataFrame:
        """Scalar features from Feast for (user, candidate) rows plus the similarities."""
        if not len(candidates):
            names = [f.split(":")[-1] for f in scalar_features] + self.similarity_names
            return pd.DataFrame({self.user_key: [], self.item_key: [], **{n: [] for n in names}})
        frame = self.store.get_online_features(
            features=list(scalar_features),
            entity_rows=[{self.user_key: user_id, self.item_key: c} for c in candidates],
        ).to_df()
        scores = self.score(user_id, candidates)
        for name in self.similarity_names:
            frame[name] = scores[name].to_numpy()
        return frame
