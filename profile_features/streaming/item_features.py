"""A streamed catalogue row's features, as the batch jobs compute them (pure: pandas in, pandas out).

Text embedding (`embeddings.embed_items`: the same cleaned, capped text), the snapshot's fitted semantic
transforms (never refitted here: the columns must stay on the snapshot's axes), and the student's item side
(`student.scoring.score_items`: an item the checkpoint never saw gets its content-only vector).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from profile_features import schemas

__all__ = ["ItemSide", "featurize_items", "item_feature_schema"]


@dataclass(frozen=True)
class ItemSide:
    """What the snapshot's item tables were made with, read on the driver, loaded by URI in each worker."""

    encoder: str  # the snapshot's item_text_embeddings encoder: a streamed vector must come from the same one
    semantic: pa.Schema | None  # the snapshot's item_semantic columns (None: the snapshot has none)
    transform_folder: str | None  # the PCA + k-means transform that wrote them
    sid_folder: str | None  # the semantic-ID transform, when the snapshot has semantic IDs
    checkpoint: str | None  # the student checkpoint that scored the snapshot (None: no student)


def item_feature_schema(side: ItemSide) -> pa.Schema:
    """ITEM_TEXT_EMBEDDINGS's columns, then item_semantic's and ITEM_STUDENT's feature columns (one wide row)."""
    fields = list(schemas.ITEM_TEXT_EMBEDDINGS)
    for table in (side.semantic, schemas.ITEM_STUDENT if side.checkpoint else None):
        if table is not None:
            fields += [f for f in table if f.name not in ("item_id", "event_timestamp", "run_date")]
    return pa.schema(fields)


def featurize_items(items: pd.DataFrame, side: ItemSide, encoder, as_of: pd.Timestamp, sanitize=None, threads=None):
    """ITEMS rows -> one wide row per item (`item_feature_schema(side)`), stamped `as_of`.

    Raises:
        ValueError: the encoder is not the one the snapshot's item vectors came from (their columns would
            be another space than the profiles' and the transforms').
    """
    from profile_features.embeddings import embed_items

    if encoder.name != side.encoder:
        raise ValueError(
            f"the stream's encoder is {encoder.name!r} but the snapshot's item vectors are {side.encoder!r}: "
            "use the embedding settings of the batch run (embedding.model_path, embedding.backend)"
        )
    out = embed_items(items, encoder, as_of, sanitize)
    vectors = out["item_text_embedding"].tolist()
    parts = [out]
    if side.semantic is not None:
        from profile_features.semantic import apply_transform, cached_transform
        from profile_features.semantic_ids import cached_sid_transform, sid_columns

        parts.append(apply_transform(vectors, cached_transform(side.transform_folder), "item"))
        if side.sid_folder:
            parts.append(sid_columns(vectors, cached_sid_transform(side.sid_folder)))
    frame = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    if side.checkpoint:
        from profile_features.student.scoring import load_student, score_items

        scored = score_items(frame, load_student(side.checkpoint, num_threads=threads))
        frame = pd.concat([frame, scored.drop(columns="item_id")], axis=1)
    return frame[item_feature_schema(side).names]
