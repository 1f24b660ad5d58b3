"""The items' content the student reads: text vectors and semantic-ID codes of one snapshot.

Both come from tables the pipeline already wrote (the embedding job's `item_text_embeddings`, the
semantic job's `item_semantic`); nothing is recomputed. One row per catalogue item is read to the
driver, as the student holds a row per item anyway. Paths are URIs (pyarrow filesystems).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from profile_features import storage
from profile_features.catalogue import ITEM_SEMANTIC, ITEM_TEXT_EMBEDDINGS, TRANSFORMS, Snapshot
from profile_features.schemas import SID_TRANSFORM_ID, sid_columns_in

__all__ = ["read_item_content"]


def _read(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    import pyarrow.dataset as ds

    filesystem, path = storage.filesystem(uri)
    dataset = ds.dataset(path, filesystem=filesystem, format="parquet")
    names = [c for c in (columns or dataset.schema.names) if c in dataset.schema.names]
    return dataset.to_table(columns=names).to_pandas()


def read_item_content(data_dir: str, run_date: str | datetime, views):
    """`student.items.ItemContent` of the snapshot `run_date` (a run date or its cutoff) for the views `views`
    (an `ItemViewsConfig`) enables; None when it enables none. Raises when a view's table is missing, naming
    the table and the stage that writes it."""
    from profile_features.semantic_ids import load_sid_transform
    from profile_features.student.items import ItemContent

    if not views.semantic:
        return None
    snapshot = Snapshot(data_dir, run_date)
    texts_uri = snapshot.path(ITEM_TEXT_EMBEDDINGS)
    if not storage.exists(texts_uri):
        raise FileNotFoundError(f"{texts_uri}: no item text embeddings for the student; run the embedding stage")
    texts = _read(texts_uri, ["item_id", "encoder", *(["item_text_embedding"] if views.text else [])])
    table = texts.drop(columns="encoder")
    encoder = str(texts["encoder"].iloc[0]) if views.text and len(texts) else None
    code_sizes, sid_id = (), None
    if views.sid:
        semantic_uri = snapshot.path(ITEM_SEMANTIC)
        semantic = _read(semantic_uri) if storage.exists(semantic_uri) else pd.DataFrame()
        levels = sid_columns_in(semantic.columns)
        if not levels:
            raise ValueError(
                f"the student reads semantic IDs (items.sid) but {semantic_uri} has none: set semantic.sid_levels > 0 "
                "and rerun the semantic columns stage"
            )
        ids = semantic[SID_TRANSFORM_ID].dropna().unique()
        if len(ids) != 1:
            raise ValueError(f"{semantic_uri}: {len(ids)} semantic-ID transforms {list(ids)} in one snapshot")
        sid_id = str(ids[0])
        code_sizes = load_sid_transform(storage.join(snapshot.root(TRANSFORMS), sid_id)).code_sizes
        table = table.merge(semantic[["item_id", *levels]], on="item_id", how="left")
    return ItemContent(table.assign(item_id=table["item_id"].astype(str)), code_sizes, encoder, sid_id)
