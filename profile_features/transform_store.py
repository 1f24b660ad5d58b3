"""Saved fitted transforms: `<directory>/<transform_id>/{arrays.npz, meta.json}` at any storage URI.

npz without pickle and JSON metadata: loading never executes stored code. meta.json is written
last, so a folder without it is an interrupted write and is never loaded. The PCA/k-means
transform (semantic.py) and the semantic-ID transform (semantic_ids.py) are stored this way.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from profile_features import storage

__all__ = ["save_arrays", "load_arrays", "save_transform_object", "load_transform_object", "saved_folders"]


def save_arrays(directory: str | Path, transform_id: str, arrays: dict[str, np.ndarray], meta: dict) -> str:
    """Write the arrays, then meta.json (with `transform_id` and `created_at`); returns the folder."""
    folder = storage.join(directory, transform_id)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.write_bytes(storage.join(folder, "arrays.npz"), buffer.getvalue())
    storage.write_json(
        storage.join(folder, "meta.json"),
        {**meta, "transform_id": transform_id, "created_at": datetime.now(timezone.utc).isoformat()},
    )
    return folder


def load_arrays(folder: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta without `transform_id`/`created_at`, arrays) and the recorded id as meta["_id"]."""
    meta = storage.read_json(storage.join(folder, "meta.json"))
    with np.load(io.BytesIO(storage.read_bytes(storage.join(folder, "arrays.npz"))), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    recorded = meta.pop("transform_id")
    meta.pop("created_at", None)
    return {**meta, "_id": recorded}, arrays


def save_transform_object(transform, directory: str | Path) -> str:
    """Save a frozen dataclass with a `transform_id` property: its array fields as arrays, the rest as meta."""
    fields = asdict(transform)
    arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in fields.items() if not isinstance(v, np.ndarray)}
    return save_arrays(directory, transform.transform_id, arrays, meta)


def load_transform_object(cls, folder: str | Path):
    """The `cls` instance `save_transform_object` wrote; its arrays must still hash to the recorded id."""
    meta, arrays = load_arrays(folder)
    recorded = meta.pop("_id")
    transform = cls(**meta, **arrays)
    if transform.transform_id != recorded:
        raise ValueError(f"{folder}: arrays do not match the recorded transform id {recorded}")
    return transform


def saved_folders(directory: str | Path, prefix: str) -> Iterator[str]:
    """Complete saved transforms whose id starts with `prefix`, newest first."""
    candidates = []
    for name in storage.list_dir(directory):
        if not name.startswith(prefix):
            continue
        folder = storage.join(directory, name)
        meta_path = storage.join(folder, "meta.json")
        if storage.exists(meta_path):  # no meta: an interrupted write
            candidates.append((storage.read_json(meta_path).get("created_at", ""), folder))
    for _, folder in sorted(candidates, reverse=True):
        yield folder
