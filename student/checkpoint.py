"""Checkpoints: safetensors weights + a JSON manifest (config, item index, data stats).

Nothing is unpickled on load: weights are safetensors, everything else is JSON validated by
pydantic. The checkpoint id is derived from the weights' content hash, so two checkpoints with
the same id hold the same weights. Writes go to a temporary directory renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from student.config import StudentConfig
from student.data import ItemIndex
from student.model import StudentModel
from student.training import resolve_device

__all__ = ["WEIGHTS_FILE", "MANIFEST_FILE", "DataStats", "LoadedStudent", "save_checkpoint", "load_checkpoint"]

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "student.json"
FORMAT_VERSION = 1


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


def save_checkpoint(out_dir: str | Path, model: StudentModel, item_index: ItemIndex, stats: DataStats) -> str:
    """Write `model.safetensors` + `student.json` atomically into `out_dir`.

    Returns:
        The checkpoint id ("<config name>-<12 hex of the weights' sha256>").
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        digest = hashlib.sha256((tmp / WEIGHTS_FILE).read_bytes()).hexdigest()
        ckpt_id = f"{model.cfg.name}-{digest[:12]}"
        manifest = {
            "format_version": FORMAT_VERSION,
            "checkpoint_id": ckpt_id,
            "weights_sha256": digest,
            "config": model.cfg.model_dump(mode="json"),
            "num_items": model.num_items,
            "profile_dim": model.profile_dim,
            "item_ids": list(item_index.item_ids),
            "stats": stats.__dict__,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ckpt_id


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedStudent:
    """Load a checkpoint directory written by `save_checkpoint` (model in eval mode)."""
    root = Path(path)
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported student checkpoint format {manifest.get('format_version')!r}")
    digest = hashlib.sha256((root / WEIGHTS_FILE).read_bytes()).hexdigest()
    if digest != manifest["weights_sha256"]:
        raise ValueError(f"{root / WEIGHTS_FILE} does not match its manifest (sha256 differs)")
    cfg = StudentConfig.model_validate(manifest["config"])
    model = StudentModel(int(manifest["num_items"]), int(manifest["profile_dim"]), cfg)
    dev = resolve_device(device)
    model.load_state_dict(load_file(str(root / WEIGHTS_FILE), device="cpu"), strict=True)
    model.to(dev).eval()
    item_index = ItemIndex(tuple(manifest["item_ids"]))
    if len(item_index) != model.num_items:
        raise ValueError("item index and model disagree on the number of items")
    stats = DataStats(**manifest["stats"])
    return LoadedStudent(model, cfg, item_index, stats, manifest["checkpoint_id"], str(root))
