"""ONNX exports of the packaged encoder, run by onnxruntime and OpenVINO, against the torch model.

Everything is real: the export traces the packaged all-MiniLM-L6-v2, the runtimes run it, the
host check runs in a child process. A broken export (bytes that are not a graph) stands in for
a host whose kernels crash, and an impossible probe threshold for one whose kernels drift.
"""

from __future__ import annotations

import numpy as np
import pytest

from profile_features import storage
from profile_features.config import EmbeddingConfig
from profile_features.embeddings import cached_encoder, default_model_path
from profile_features.encoder_backends import (
    EncoderChoice,
    ExportedEncoder,
    checked_encoder,
    choose_backend,
    host_signature,
    probe_cosines,
)
from profile_features.encoder_export import ensure_export

TEXTS = [
    "A science fiction film about astronauts in space",
    "x",
    "Loves westerns, war films and crime dramas. " * 60,  # past the 256-token limit: truncated alike
    "A romantic comedy wedding",
    "Astronauts explore a distant planet",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_export_records_its_provenance_and_is_reused(exports):
    directory, folders = exports
    meta = storage.read_json(storage.join(folders["int8"], "meta.json"))
    assert meta["precision"] == "int8" and meta["source_model"] == "all-MiniLM-L6-v2"
    assert set(meta["export_hash"]) == {"onnx", "openvino"} and len(meta["source_hash"]) == 64
    assert len(meta["probe_vectors"]) == len(meta["probe_texts"]) and meta["dim"] == 384
    assert folders["fp32"] != folders["int8"]
    before = storage.read_bytes(storage.join(folders["int8"], "meta.json"))
    assert ensure_export(default_model_path(), "all-MiniLM-L6-v2", "int8", directory) == folders["int8"]
    assert storage.read_bytes(storage.join(folders["int8"], "meta.json")) == before  # not exported again


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fp32_exports_give_the_torch_vectors_in_input_order(exports, encoder, backend):
    exported = ExportedEncoder(exports[1]["fp32"], backend, batch_size=2, threads=1)
    vectors = exported.encode(TEXTS)  # batches are length-sorted inside; rows must come back in order
    reference = encoder.encode(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert cosines(vectors, reference).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert exported.name.startswith(f"all-MiniLM-L6-v2+{backend}-fp32-")
    assert exported.encode([]).shape == (0, 384)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_int8_exports_stay_close_to_torch_and_name_themselves_apart(exports, encoder, backend):
    int8 = ExportedEncoder(exports[1]["int8"], backend, threads=1)
    fp32 = ExportedEncoder(exports[1]["fp32"], backend, threads=1)
    similarity = cosines(int8.encode(TEXTS), encoder.encode(TEXTS))
    assert similarity.mean() > 0.98 and similarity.min() > 0.95
    assert int8.name != fp32.name != encoder.name  # vectors of two models never share a provenance name
    assert probe_cosines(int8).min() > 0.95


def test_choose_backend_uses_a_working_export_and_remembers_the_host_check(exports, tmp_path):
    config = EmbeddingConfig(backend="onnx", precision="fp32")
    choice = choose_backend(config, str(tmp_path), default_model_path(), "all-MiniLM-L6-v2")
    assert (choice.backend, choice.precision, choice.fallback_reason) == ("onnx", "fp32", None)
    record = storage.join(choice.folder, "checks", f"onnx-fp32-{host_signature('onnx')}.json")
    assert storage.read_json(record)["min_cosine"] > 0.9999
    loaded = cached_encoder(config, 1, choice)
    assert loaded.name == choice.name and cached_encoder(config, 1, choice) is loaded
    assert choose_backend(EmbeddingConfig(backend="torch"), str(tmp_path), default_model_path(), "m") == EncoderChoice()


def test_a_host_that_crashes_on_the_export_falls_back_to_torch(exports, tmp_path):
    config = EmbeddingConfig(backend="onnx", precision="fp32")
    choice = choose_backend(config, str(tmp_path), default_model_path(), "all-MiniLM-L6-v2")
    storage.write_bytes(storage.join(choice.folder, "model.onnx"), b"not a graph")  # what a crashing kernel leaves
    storage.delete(storage.join(choice.folder, "checks"))
    fallback = choose_backend(config, str(tmp_path), default_model_path(), "all-MiniLM-L6-v2")
    assert fallback.backend == "torch" and fallback.folder is None
    assert "onnx-fp32" in fallback.fallback_reason and "exit status" in fallback.fallback_reason


def test_drifting_vectors_fall_back_on_the_driver_and_stop_an_executor(exports, tmp_path):
    strict = EmbeddingConfig(backend="onnx", precision="int8", min_probe_cosine=0.99999)
    fallback = choose_backend(strict, str(tmp_path), default_model_path(), "all-MiniLM-L6-v2")
    assert fallback.backend == "torch" and "probe cosine" in fallback.fallback_reason
    choice = EncoderChoice("onnx", "int8", exports[1]["int8"], "n")
    with pytest.raises(RuntimeError, match="embedding.backend: torch"):
        checked_encoder(choice, 16, True, 1, 0.99999)


def test_openvino_bf16_runs_the_fp32_export_close_to_torch(exports, encoder):
    bf16 = ExportedEncoder(exports[1]["fp32"], "openvino", threads=1, precision="bf16")
    assert bf16.name.startswith("all-MiniLM-L6-v2+openvino-bf16-")
    assert cosines(bf16.encode(TEXTS), encoder.encode(TEXTS)).min() > 0.999
    with pytest.raises(ValueError, match="bf16 needs embedding.backend openvino"):
        EmbeddingConfig(backend="onnx", precision="bf16")
