"""Checks on a checkpoint's untrusted files, made before anything is built from them.

A checkpoint folder may come from anywhere (a copied bucket, a crafted upload), so nothing in it
is trusted: `CURRENT.json` must name one version folder inside the checkpoint (no path), the
manifest's sizes must be plain counts and its item ids distinct, and the weights file's header
must lie within the file and hold exactly the tensors, shapes and dtypes the manifest's model has.
The model is first built on PyTorch's meta device (shapes only, no memory), so a manifest asking
for a 192 GB embedding is refused with the file named, not allocated.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_checkpoint_id", "check_manifest", "weights_header", "check_weights_match"]

# A version folder's name: one path segment, as save_checkpoint writes it ("<name>-<12 hex>").
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_TORCH_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def check_checkpoint_id(value: Any, source: str) -> str:
    """`value` when it names one folder (letters, digits, `_.-`; no `/`, `..` or leading dot)."""
    if not isinstance(value, str) or not _ID.fullmatch(value) or ".." in value:
        raise ValueError(f"{source}: checkpoint_id {str(value)[:80]!r} is not a checkpoint version name")
    return value


def _count(manifest: dict, field: str, source: str, minimum: int = 0) -> int:
    value = manifest.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{source}: {field} must be a whole number >= {minimum}, got {str(value)[:80]!r}")
    return value


def check_manifest(manifest: Any, source: str) -> None:
    """Types and counts of the manifest's fields; item ids are distinct strings, one per item."""
    if not isinstance(manifest, dict):
        raise ValueError(f"{source}: the manifest is not a JSON object")
    for field in ("checkpoint_id", "weights_sha256"):
        if not isinstance(manifest.get(field), str):
            raise ValueError(f"{source}: {field} missing or not a string")
    num_items = _count(manifest, "num_items", source, minimum=1)
    _count(manifest, "profile_dim", source)
    _count(manifest, "text_dim", source)
    codes = manifest.get("code_sizes")
    if not isinstance(codes, list) or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in codes):
        raise ValueError(f"{source}: code_sizes must be a list of whole numbers >= 1")
    for field in ("config", "stats"):
        if not isinstance(manifest.get(field), dict):
            raise ValueError(f"{source}: {field} missing or not a JSON object")
    ids = manifest.get("item_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"{source}: item_ids must be a list of strings")
    if len(ids) != num_items:
        raise ValueError(f"{source}: {len(ids)} item_ids for num_items={num_items}")
    if len(set(ids)) != len(ids):
        repeated = [i for i, n in Counter(ids).items() if n > 1]
        raise ValueError(f"{source}: {len(repeated)} item id(s) listed more than once (first: {repeated[:5]})")


def weights_header(path: Path, source: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file, after checking that the header and every
    tensor's byte range lie within the file and match its dtype and shape."""
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(8)
        if len(head) < 8:
            raise ValueError(f"{source}: {size} bytes, not a safetensors file")
        length = struct.unpack("<Q", head)[0]
        if length > min(_MAX_HEADER, size - 8):
            raise ValueError(f"{source}: header of {length} bytes in a file of {size}")
        try:
            header = json.loads(file.read(length))
        except ValueError as err:
            raise ValueError(f"{source}: unreadable safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{source}: the safetensors header is not a JSON object")
    data_bytes, tensors = size - 8 - length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            ok = dtype in _DTYPE_BYTES and all(isinstance(d, int) and d >= 0 for d in (*shape, begin, end))
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok or not 0 <= begin <= end <= data_bytes or end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise ValueError(f"{source}: tensor {name!r} has a header that does not fit the file")
        tensors[name] = (dtype, shape)
    return tensors


def check_weights_match(model_on_meta: torch.nn.Module, header: dict, source: str) -> None:
    """The weights file holds exactly the model's tensors, with its shapes and dtypes."""
    expected = {
        k: (_TORCH_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape)) for k, v in model_on_meta.state_dict().items()
    }
    missing, extra = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{source}: weights and manifest disagree on tensors (missing {missing[:5]}, extra {extra[:5]})"
        )
    for name, (dtype, shape) in expected.items():
        if header[name] != (dtype, shape):
            raise ValueError(
                f"{source}: tensor {name!r} is {header[name][0]}{list(header[name][1])} in the weights, "
                f"the manifest's model needs {dtype}{list(shape)}"
            )
