"""ONNX exports of the sentence encoder, made once and stored by URI with their provenance.

The packaged sentence-transformers model is traced whole (transformer, pooling,
normalisation) into one ONNX graph, fused for BERT-like encoders with onnxruntime's
transformer optimiser, and for `int8` dynamically quantised (int8 weights, activations
quantised per batch). Nothing is downloaded: the source is the local model folder.

An export folder holds `model.onnx` (fused, for onnxruntime), `portable.onnx` (standard ops,
for OpenVINO), `tokenizer.json` and, written last so that its presence marks a complete export,
`meta.json`: source model hash, precision, the sha256 of each graph (`export_hash`, part of the
encoder's name and so of every vector's provenance), the tool versions, and probe texts with
their vectors from the torch model. Any process that
loads an export re-encodes the probes and compares (see `encoder_backends`), which is how a
host whose kernels misbehave is caught before it writes a vector.

The exporter needs torch, sentence-transformers and onnx (the `embed` extra); loading an
export needs only onnxruntime or openvino and tokenizers.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from profile_features import storage

__all__ = ["EXPORTER_VERSION", "PROBE_TEXTS", "source_hash", "export_folder", "ensure_export"]

log = logging.getLogger(__name__)

# Bump when the export recipe changes: it is part of the folder key, so old exports are not reused.
EXPORTER_VERSION = "1"

# Short and long, plain and odd: the long one passes the encoder's maximum length, so truncation
# is checked too.
PROBE_TEXTS = (
    "Watches mostly science fiction and thrillers from the 1990s, rates dramas highly.",
    "A light viewer: a few family comedies and one animated musical.",
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "Prefers documentaries about nature, history and travel; avoids horror.",
    "café, naïve façade — déjà vu 東京 🎬",
    "x",
    " ".join(["Long history of westerns, war films and crime dramas with the same directors."] * 40),
    "Recently switched from romance to noir and film festival picks in French and Italian.",
)


def source_hash(model_path: str) -> str:
    """sha256 over the model folder's file names and contents (the export's source identity)."""
    files = sorted(p for p in Path(model_path).rglob("*") if p.is_file() and ".git" not in p.parts)
    return _hash_files(model_path, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=8)
def _hash_files(model_path: str, files: tuple) -> str:  # keyed on names, sizes and times: hashed once
    digest = hashlib.sha256()
    root = Path(model_path)
    for path in (Path(name) for name, _, _ in files):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def export_folder(directory: str, model_name: str, precision: str, model_hash: str) -> str:
    return storage.join(directory, f"{model_name}-{precision}-{model_hash[:12]}-v{EXPORTER_VERSION}")


def ensure_export(model_path: str, model_name: str, precision: str, directory: str) -> str:
    """The URI of a complete export of `model_path` at `precision` under `directory`; exported
    now when none exists (on the driver: it needs torch)."""
    model_hash = source_hash(model_path)
    folder = export_folder(directory, model_name, precision, model_hash)
    if not storage.exists(storage.join(folder, "meta.json")):
        earlier = _MADE.get((model_hash, precision))
        # The same export for another data_dir: copying beats tracing, when the files are still intact.
        if not (earlier and _copy_export(earlier, folder)):
            log.info("exporting %s to ONNX (%s) into %s", model_name, precision, folder)
            with tempfile.TemporaryDirectory(prefix="pf-export-") as tmp:
                meta = _export(model_path, precision, Path(tmp))
                meta.update(source_model=model_name, source_hash=model_hash, exporter_version=EXPORTER_VERSION)
                storage.write_json(str(Path(tmp) / "meta.json"), meta)
                storage.upload_dir(tmp, folder, last="meta.json")
    _MADE[(model_hash, precision)] = folder
    return folder


# (source hash, precision) -> a complete export this process made or found.
_MADE: dict[tuple[str, str], str] = {}


def _copy_export(source: str, target: str) -> bool:
    """Copy a complete export whose graphs still have their recorded hashes; False if it has not."""
    try:
        meta = storage.read_json(storage.join(source, "meta.json"))
        files = {
            name: storage.read_bytes(storage.join(source, name)) for name in [*meta["files"].values(), "tokenizer.json"]
        }
    except OSError:
        return False
    if any(hashlib.sha256(files[name]).hexdigest() != meta["export_hash"][b] for b, name in meta["files"].items()):
        return False
    for name, data in files.items():
        storage.write_bytes(storage.join(target, name), data)
    storage.write_json(storage.join(target, "meta.json"), meta)  # last: marks the copy complete
    return True


def _export(model_path: str, precision: str, out: Path) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime
    import torch
    from sentence_transformers import SentenceTransformer

    # Eager attention traces to plain ops the optimiser recognises (SDPA would not fuse).
    model = SentenceTransformer(model_path, device="cpu", model_kwargs={"attn_implementation": "eager"}).eval()
    probe_vectors = model.encode(list(PROBE_TEXTS), convert_to_numpy=True, normalize_embeddings=False)
    prepare = getattr(model, "preprocess", model.tokenize)  # sentence-transformers >= 6 renamed it
    sample = prepare(["a short sample", "and a second, slightly longer sample text"])
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class Pooled(torch.nn.Module):
        """The whole sentence-transformers pipeline as a function of the tokenizer's tensors."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(dict(zip(names, tensors)))["sentence_embedding"]

    raw = out / "raw.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes: expected
        torch.onnx.export(
            Pooled(),
            tuple(sample[name] for name in names),
            str(raw),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    fused = out / "fused.onnx"
    _optimize(raw, fused, model)
    # onnxruntime runs the fused graph (its own contrib ops); OpenVINO reads standard ONNX ops only.
    files = {"onnx": "model.onnx", "openvino": "portable.onnx"}
    for source, name in ((fused, files["onnx"]), (raw, files["openvino"])):
        if precision == "int8":
            _quantize(source, out / name)
        else:
            source.rename(out / name)
    for leftover in (raw, fused):
        leftover.unlink(missing_ok=True)
    model.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    return {
        "format": "onnx",
        "precision": precision,
        "inputs": names,
        "max_seq_length": int(model.max_seq_length),
        "dim": int(probe_vectors.shape[1]),
        "files": files,
        "export_hash": {
            backend: hashlib.sha256((out / name).read_bytes()).hexdigest() for backend, name in files.items()
        },
        "probe_texts": list(PROBE_TEXTS),
        "probe_vectors": np.asarray(probe_vectors, dtype=np.float32).round(6).tolist(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _quantize(source: Path, target: Path) -> None:
    """int8 weights (per output channel), activations quantised per batch at run time."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, root.level = root.level, max(root.level, logging.ERROR)  # the quantiser logs every tensor to root
    try:
        # Fused contrib ops have no ONNX shape inference: their outputs are float, say so.
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.level = level


def _optimize(raw: Path, out: Path, model) -> None:
    """BERT fusions (attention, skip-layer-norm, GELU) when the encoder is BERT-like, else as traced."""
    config = model[0].auto_model.config
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0)),
            hidden_size=int(getattr(config, "hidden_size", 0)),
            opt_level=1,
        )
        optimized.save_model_to_file(str(out))
    except Exception as error:  # noqa: BLE001 - fusions are an optimisation; the traced graph is correct
        log.warning("ONNX transformer fusions unavailable (%s); using the traced graph", error)
        raw.rename(out)
