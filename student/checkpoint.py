"""Checkpoints: safetensors weights + a JSON manifest (config, item index, data stats).

Nothing is unpickled on load: weights are safetensors, everything else is JSON validated by
pydantic. The checkpoint id is derived from the weights' content hash, so two checkpoints with
the same id hold the same weights. Checkpoints live at any path or URI (profile_features.storage):
each is written to its own version folder and published by one atomic pointer write.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from profile_features import storage
from profile_features.student.checkpoint_checks import (
    check_checkpoint_id,
    check_manifest,
    check_weights_match,
    weights_header,
)
from profile_features.student.config import StudentConfig
from profile_features.student.data import ItemIndex
from profile_features.student.model import StudentModel
from profile_features.student.training import resolve_device

__all__ = [
    "WEIGHTS_FILE",
    "MANIFEST_FILE",
    "CURRENT_FILE",
    "DataStats",
    "LoadedStudent",
    "save_checkpoint",
    "checkpoint_location",
    "load_checkpoint",
]

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "student.json"
CURRENT_FILE = "CURRENT.json"
VERSIONS_DIR = "versions"
# 2: item encoder (ID, text and semantic-ID views; the text vectors and codes are saved in the weights).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class DataStats:
    """Facts about the training data discovered at run time."""

    num_users: int
    num_items: int
    num_interactions: int
    profile_dim: int
    users_with_profile: int
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class LoadedStudent:
    """A student ready for scoring: model (eval mode) + what it needs to read raw ids."""

    model: StudentModel
    config: StudentConfig
    item_index: ItemIndex
    stats: DataStats
    checkpoint_id: str
    path: str
    item_features: dict | None = None  # provenance of the item text vectors and semantic-ID codes

    @property
    def variant(self) -> str:
        """What the deployment guard shipped (`stats.extra["variant"]`; "configured" when unguarded)."""
        return str((self.stats.extra or {}).get("variant") or "configured")

    @property
    def output_rotation(self) -> np.ndarray | None:
        """[H, H] orthogonal map every served vector is multiplied by (student/alignment.py); None: identity."""
        rotation = (self.stats.extra or {}).get("output_rotation")
        return None if rotation is None else np.asarray(rotation, dtype=np.float32)


def _version_dir(out: str, checkpoint_id: str) -> str:
    return storage.join(out, VERSIONS_DIR, checkpoint_id)


def save_checkpoint(
    out_dir: str | Path,
    model: StudentModel,
    item_index: ItemIndex,
    stats: DataStats,
    item_provenance: dict | None = None,
) -> str:
    """Write the checkpoint under `out_dir` (a path or URI) and point `CURRENT.json` at it.

    Layout: `<out_dir>/versions/<checkpoint_id>/{model.safetensors, student.json}` (the manifest
    written last), then `<out_dir>/CURRENT.json` (one atomic write) names the version to load.
    A writer killed at any point leaves the previous CURRENT in force and at most an unreferenced
    version folder; two writers at once each write their own folder, and the last CURRENT wins,
    so a reader never sees one writer's weights with another's manifest.

    `item_provenance` (`ItemFeatures.provenance`): the encoder of the item text vectors and the
    semantic-ID transform the codes come from.

    Returns:
        The checkpoint id ("<config name>-<12 hex of the weights' sha256>").
    """
    out = storage.normalize(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix="student-checkpoint-"))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        digest = hashlib.sha256((tmp / WEIGHTS_FILE).read_bytes()).hexdigest()
        ckpt_id = check_checkpoint_id(f"{model.cfg.name}-{digest[:12]}", f"student config name {model.cfg.name!r}")
        manifest = {
            "format_version": FORMAT_VERSION,
            "checkpoint_id": ckpt_id,
            "weights_sha256": digest,
            "config": model.cfg.model_dump(mode="json"),
            "num_items": model.num_items,
            "profile_dim": model.profile_dim,
            "text_dim": model.items.text_dim,
            "code_sizes": list(model.items.code_sizes),
            "item_features": item_provenance or {},
            "item_ids": list(item_index.item_ids),
            "stats": stats.__dict__,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        storage.upload_dir(tmp, _version_dir(out, ckpt_id), last=MANIFEST_FILE)
        storage.write_json(storage.join(out, CURRENT_FILE), {"checkpoint_id": ckpt_id})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ckpt_id


def checkpoint_location(path: str | Path) -> str:
    """The folder holding the weights and manifest that `path` currently points to."""
    root = storage.normalize(path)
    current = storage.join(root, CURRENT_FILE)
    if storage.exists(current):
        pointer = storage.read_json(current)
        checkpoint_id = pointer.get("checkpoint_id") if isinstance(pointer, dict) else None
        return _version_dir(root, check_checkpoint_id(checkpoint_id, current))  # never a path outside `root`
    if storage.exists(storage.join(root, MANIFEST_FILE)):  # a flat folder (e.g. copied by hand)
        return root
    raise FileNotFoundError(f"{root}: no student checkpoint ({CURRENT_FILE} or {MANIFEST_FILE}) there")


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedStudent:
    """Load the checkpoint `save_checkpoint` wrote under `path` (a path or URI; model in eval mode)."""
    location = checkpoint_location(path)
    with storage.local_copy(location) as root:
        source = storage.join(location, MANIFEST_FILE)
        manifest = json.loads((root / MANIFEST_FILE).read_text())
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            found = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise ValueError(
                f"{location}: student checkpoint format {found!r}, this version reads "
                f"{FORMAT_VERSION}; train the student again (the pipeline's train_student stage)"
            )
        # Every size and id is checked against the folder and the weights file before anything is built.
        check_manifest(manifest, source)
        if location != storage.normalize(path) and location.rstrip("/").rsplit("/", 1)[-1] != manifest["checkpoint_id"]:
            raise ValueError(f"{source}: checkpoint_id {manifest['checkpoint_id'][:80]!r} is not its folder's name")
        with (root / WEIGHTS_FILE).open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        if digest != manifest["weights_sha256"]:
            raise ValueError(f"{storage.join(location, WEIGHTS_FILE)} does not match its manifest (sha256 differs)")
        header = weights_header(root / WEIGHTS_FILE, storage.join(location, WEIGHTS_FILE))
        cfg = StudentConfig.model_validate(manifest["config"])
        sizes = (manifest["num_items"], manifest["profile_dim"], cfg, manifest["text_dim"], manifest["code_sizes"])
        try:
            with torch.device("meta"):  # shapes only: nothing is allocated for what the weights do not hold
                on_meta = StudentModel(*sizes)
        except (RuntimeError, ValueError, OverflowError) as err:
            raise ValueError(f"{source}: tensor sizes the manifest asks for build no model ({err})") from None
        check_weights_match(on_meta, header, source)
        state = load_file(str(root / WEIGHTS_FILE), device="cpu")
    model = StudentModel(*sizes)
    dev = resolve_device(device)
    model.load_state_dict(state, strict=True)
    model.to(dev).eval()
    item_index = ItemIndex(tuple(manifest["item_ids"]))
    if len(item_index) != model.num_items:
        raise ValueError("item index and model disagree on the number of items")
    stats = DataStats(**manifest["stats"])
    return LoadedStudent(
        model, cfg, item_index, stats, manifest["checkpoint_id"], location, manifest.get("item_features")
    )
