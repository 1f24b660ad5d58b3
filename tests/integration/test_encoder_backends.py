"""An ONNX export written to an object store (a real S3-compatible server, moto) is loaded by its URI."""

from __future__ import annotations

from profile_features import storage
from profile_features.embeddings import default_model_path
from profile_features.encoder_backends import ExportedEncoder
from profile_features.encoder_export import ensure_export
from tests.unit.test_encoder_backends import TEXTS, cosines


def test_an_export_on_an_object_store_is_loaded_by_uri(exports, s3_bucket):
    folder = ensure_export(default_model_path(), "all-MiniLM-L6-v2", "fp32", f"{s3_bucket}/encoders")
    assert folder.startswith("s3a://features/pf/encoders/") and storage.exists(storage.join(folder, "meta.json"))
    remote = ExportedEncoder(folder, "onnx", threads=1)
    local = ExportedEncoder(exports[1]["fp32"], "onnx", threads=1)
    assert cosines(remote.encode(TEXTS), local.encode(TEXTS)).min() > 0.99999
