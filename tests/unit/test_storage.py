"""The storage layer on plain paths and file:// URIs (a real S3-compatible server: tests/integration).

What goes through it is every artifact that is not a Spark table: run summaries, semantic
transforms, student checkpoints (written by the driver, read by executors by URI).
"""

from __future__ import annotations

import pytest

from profile_features import storage


def test_paths_and_uris_join_without_losing_the_scheme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.join("hdfs://nn:8020/pf/", "runs", "a.json") == "hdfs://nn:8020/pf/runs/a.json"
    assert storage.join("s3a://bucket/pf", "versions") == "s3a://bucket/pf/versions"
    assert storage.join("data", "runs") == str(tmp_path / "data" / "runs")  # relative -> absolute
    assert storage.filesystem("file:///tmp/x")[1] == "/tmp/x"
    assert storage.filesystem("s3a://bucket/key/part")[1] == "bucket/key/part"


@pytest.mark.parametrize("scheme", ["plain", "file"])
def test_local_round_trip(tmp_path, scheme):
    root = str(tmp_path / "store") if scheme == "plain" else f"file://{tmp_path}/store"
    _round_trip(root)
    assert (tmp_path / "store" / "runs" / "b.json").exists()
    assert not list((tmp_path / "store" / "runs").glob("*.tmp-*"))  # the atomic write left nothing behind


def _round_trip(root: str) -> None:
    runs = storage.join(root, "runs")
    assert storage.list_dir(runs) == [] and not storage.exists(runs)
    storage.write_json(storage.join(runs, "b.json"), {"rows": 3})
    storage.write_text(storage.join(runs, "a.json"), '{"rows": 1}')
    assert storage.list_dir(runs) == ["a.json", "b.json"]
    assert storage.read_json(storage.join(runs, "b.json")) == {"rows": 3}
    storage.write_json(storage.join(runs, "b.json"), {"rows": 4})  # replaced whole
    assert storage.read_json(storage.join(runs, "b.json")) == {"rows": 4}
    storage.write_text(storage.join(runs, "bad.json"), "{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        storage.read_json(storage.join(runs, "bad.json"))
    with pytest.raises(FileNotFoundError, match="missing.json: not found"):
        storage.read_bytes(storage.join(runs, "missing.json"))
    storage.delete(storage.join(runs, "bad.json"))
    assert storage.list_dir(runs) == ["a.json", "b.json"]
