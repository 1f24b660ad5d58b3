"""Which runtime encodes texts: torch (sentence-transformers), onnxruntime or OpenVINO.

`choose_backend` runs once on the driver: it makes (or reuses) the ONNX export, checks in a
child process that this host runs it faithfully (a crash in a vectorised kernel kills the
child, not the job; vectors far from the torch model's fail the check) and otherwise falls
back to torch, saying why. The choice travels to the executors as a small frozen value, so
every row of one run is written by one model, and its name (backend, precision, export hash)
is the `encoder` provenance column that the semantic transforms are keyed on: vectors of two
models are never mixed in one table or one transform.

`ExportedEncoder` is the `Encoder` of an export: tokenises with the model's own fast
tokenizer, sorts texts by length so each batch pads little, and checks the export's probe
vectors on load (an executor on a host whose kernels misbehave stops with a clear error
instead of writing wrong vectors).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys

import numpy as np

from profile_features import storage

__all__ = ["EncoderChoice", "ExportedEncoder", "choose_backend", "probe_cosines", "host_signature"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EncoderChoice:
    """What the executors load. `folder` is the export's URI (None for torch)."""

    backend: str = "torch"
    precision: str = "fp32"
    folder: str | None = None
    name: str | None = None  # provenance name; None: the torch model's own name
    fallback_reason: str | None = None


def _runtime_version(backend: str) -> str:
    module = __import__("onnxruntime" if backend == "onnx" else "openvino")
    return str(module.__version__)


def host_signature(backend: str) -> str:
    """CPU model, its vector extensions and the runtime's version: what a host check depends on."""
    flags = model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    text = f"{platform.machine()}|{model}|{flags}|{backend}|{_runtime_version(backend)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def exported_name(meta: dict, backend: str, precision: str | None = None) -> str:
    """Provenance name of an export run by `backend`: model, backend, precision, hash of the graph it runs."""
    return f"{meta['source_model']}+{backend}-{precision or meta['precision']}-{meta['export_hash'][backend][:8]}"


def export_precision(precision: str) -> str:
    """The export a precision runs: bf16 is the fp32 graph computed in bf16 by OpenVINO."""
    return "int8" if precision == "int8" else "fp32"


class ExportedEncoder:
    """An ONNX export run by onnxruntime or OpenVINO; same interface as the torch encoder."""

    def __init__(
        self,
        folder: str,
        backend: str,
        batch_size: int = 16,
        normalize: bool = True,
        threads: int = 1,
        precision: str | None = None,
    ):
        from tokenizers import Tokenizer

        self.meta = storage.read_json(storage.join(folder, "meta.json"))
        self.backend, self.batch_size, self.normalize = backend, batch_size, normalize
        self.dim = int(self.meta["dim"])
        self.precision = precision or self.meta["precision"]
        self.name = exported_name(self.meta, backend, self.precision)
        self.tokenizer = Tokenizer.from_str(storage.read_text(storage.join(folder, "tokenizer.json")))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(self.meta["max_seq_length"]))
        model_bytes = storage.read_bytes(storage.join(folder, self.meta["files"][backend]))
        if backend == "onnx":
            self._run = _onnxruntime(model_bytes, threads)
        else:
            self._run = _openvino(model_bytes, threads, bf16=self.precision == "bf16")

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # short with short: little padding
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run(self._feeds([encodings[r] for r in rows]))
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _feeds(self, batch) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in batch)
        feeds = {name: np.zeros((len(batch), width), dtype=np.int64) for name in self.meta["inputs"]}
        for row, encoding in enumerate(batch):
            n = len(encoding.ids)
            feeds["input_ids"][row, :n] = encoding.ids
            feeds["attention_mask"][row, :n] = encoding.attention_mask
            if "token_type_ids" in feeds:
                feeds["token_type_ids"][row, :n] = encoding.type_ids
        return feeds


def _onnxruntime(model_bytes: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino(model_bytes: bytes, threads: int, bf16: bool):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(model=model_bytes, weights=b"")  # ONNX: the weights are inside the graph
    settings = {
        "INFERENCE_NUM_THREADS": threads,
        # Said either way: on hosts with bf16 units OpenVINO would otherwise pick bf16 by itself.
        "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        # Pinned threads of two Spark Python workers land on the same core (half the speed measured).
        "ENABLE_CPU_PINNING": False,
    }
    compiled = core.compile_model(model, "CPU", settings)
    return lambda feeds: compiled(feeds)[0]


def probe_cosines(encoder: ExportedEncoder) -> np.ndarray:
    """Cosine of each probe text's vector to the torch model's vector stored at export time."""
    reference = np.asarray(encoder.meta["probe_vectors"], dtype=np.float32)
    vectors = encoder.encode(encoder.meta["probe_texts"])
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return (reference * vectors).sum(axis=1)


def checked_encoder(choice: EncoderChoice, batch_size: int, normalize: bool, threads: int, min_cosine: float):
    """Load `choice` on this process's host and stop, naming the host, if it misses the probes."""
    encoder = ExportedEncoder(choice.folder, choice.backend, batch_size, normalize, threads, choice.precision)
    cosines = probe_cosines(encoder)
    if float(cosines.min()) < min_cosine:
        raise RuntimeError(
            f"{encoder.name} on host {platform.node()}: probe cosine to the torch model {cosines.min():.4f} "
            f"< embedding.min_probe_cosine {min_cosine}; this host runs the {choice.backend} kernels wrongly. "
            "Set embedding.backend: torch (vectors of one run must come from one model)"
        )
    return encoder


def _host_check(folder: str, backend: str, precision: str, timeout_s: float) -> dict:
    """Probe cosines of the export on this host, in a child process (a crash is a result, not our death);
    remembered per host signature beside the export."""
    record = storage.join(folder, "checks", f"{backend}-{precision}-{host_signature(backend)}.json")
    if storage.exists(record):
        return storage.read_json(record)
    command = [sys.executable, "-m", "profile_features.encoder_backends", folder, backend, precision]
    try:
        # The child imports this package from where the parent did (a spark-submit driver: the --py-files zip).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        if done.returncode == 0:
            result = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            tail = (done.stderr or "").strip().splitlines()[-1:] or [""]
            result = {"ok": False, "error": f"exit status {done.returncode} {tail[0][:300]}"}
    except subprocess.TimeoutExpired:  # perhaps only a busy host: not remembered
        return {"ok": False, "error": f"no answer in {timeout_s:.0f} s"}
    storage.write_json(record, result)
    return result


def choose_backend(config, directory: str, model_path: str, model_name: str) -> EncoderChoice:
    """The backend this run uses (driver side): the configured one when it exports, loads and passes
    the probes on this host, else torch with the reason logged and kept in the choice."""
    if config.backend == "torch":
        return EncoderChoice()
    from profile_features.encoder_export import ensure_export

    try:
        folder = ensure_export(model_path, model_name, export_precision(config.precision), directory)
        check = _host_check(folder, config.backend, config.precision, timeout_s=600)
    except Exception as error:  # noqa: BLE001 - any failure to export means: use torch, and say so
        check = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        folder = None
    if check.get("ok") and check["min_cosine"] >= config.min_probe_cosine:
        meta = storage.read_json(storage.join(folder, "meta.json"))
        name = exported_name(meta, config.backend, config.precision)
        return EncoderChoice(config.backend, config.precision, folder, name)
    reason = check.get("error") or (
        f"probe cosine to the torch model {check['min_cosine']:.4f} < embedding.min_probe_cosine "
        f"{config.min_probe_cosine}"
    )
    log.warning(
        "embedding.backend %s (%s) cannot run on this host: %s; using torch", config.backend, config.precision, reason
    )
    return EncoderChoice(fallback_reason=f"{config.backend}-{config.precision}: {reason}")


def _main(folder: str, backend: str, precision: str) -> None:
    """Child process of the host check: encode the probes and print their cosines as JSON."""
    encoder = ExportedEncoder(folder, backend, threads=1, precision=precision)
    cosines = probe_cosines(encoder)
    print(json.dumps({"ok": True, "mean_cosine": float(cosines.mean()), "min_cosine": float(cosines.min())}))


if __name__ == "__main__":
    _main(*sys.argv[1:4])
