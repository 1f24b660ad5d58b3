"""One storage layer for every artifact that is not a Spark table.

Run summaries, semantic transforms, student checkpoints, the profile cache and reports
are addressed by URI, the same way Spark addresses the tables beside them:
plain and relative paths (made absolute), `file://`, `s3://` / `s3a://` / `s3n://`,
`gs://`, `hdfs://`. Everything goes through pyarrow's filesystems, so a driver and its
executors read the same artifact by the same URI; nothing assumes the driver's disk.

S3 settings come from the usual AWS environment (credentials, region) plus
`AWS_ENDPOINT_URL` for S3-compatible stores (MinIO, Ceph, moto). Writes of one file
are atomic everywhere: a local file is written beside its target and renamed; an object
store PUT is atomic by itself.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "is_uri",
    "normalize",
    "join",
    "filesystem",
    "exists",
    "read_bytes",
    "read_text",
    "read_json",
    "write_bytes",
    "write_text",
    "write_json",
    "list_dir",
    "delete",
    "upload_dir",
    "local_copy",
    "StorageUnreachable",
    "check_reachable",
]

_S3_SCHEMES = {"s3", "s3a", "s3n"}


def is_uri(path: str) -> bool:
    return "://" in str(path)


def normalize(path: str | os.PathLike) -> str:
    """A plain or relative path made absolute; URIs unchanged (trailing slashes dropped)."""
    text = str(path)
    return text.rstrip("/") if is_uri(text) else str(Path(text).absolute())


def join(base: str | os.PathLike, *parts: str) -> str:
    """`base` / parts, as a URI or absolute path of the same kind as `base`."""
    return posixpath.join(normalize(base), *parts) if is_uri(str(base)) else str(Path(normalize(base)).joinpath(*parts))


def filesystem(uri: str | os.PathLike):
    """(pyarrow FileSystem, path within it) for a path or URI."""
    from pyarrow import fs

    text = normalize(uri)
    if not is_uri(text):
        return fs.LocalFileSystem(), text
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return fs.LocalFileSystem(), parsed.path
    if scheme in _S3_SCHEMES:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        options: dict[str, Any] = {}
        if endpoint:
            endpoint_url = urlparse(endpoint)
            options = {"endpoint_override": endpoint_url.netloc or endpoint, "scheme": endpoint_url.scheme or "https"}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        return fs.S3FileSystem(**options), f"{parsed.netloc}{parsed.path}"
    filesystem_, path = fs.FileSystem.from_uri(text)
    return filesystem_, path


def exists(uri: str | os.PathLike) -> bool:
    from pyarrow import fs

    filesystem_, path = filesystem(uri)
    return filesystem_.get_file_info(path).type != fs.FileType.NotFound


def read_bytes(uri: str | os.PathLike) -> bytes:
    filesystem_, path = filesystem(uri)
    try:
        with filesystem_.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{uri}: not found") from err


def read_text(uri: str | os.PathLike) -> str:
    return read_bytes(uri).decode("utf-8")


def read_json(uri: str | os.PathLike) -> Any:
    try:
        return json.loads(read_text(uri))
    except json.JSONDecodeError as err:
        raise ValueError(f"{uri}: not valid JSON ({err})") from err


def write_bytes(uri: str | os.PathLike, data: bytes) -> str:
    """Write one file atomically (readers see the old file or the new one, never half of it)."""
    from pyarrow import fs

    filesystem_, path = filesystem(uri)
    parent = posixpath.dirname(path)
    if parent:
        filesystem_.create_dir(parent, recursive=True)
    if isinstance(filesystem_, fs.LocalFileSystem):
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        with filesystem_.open_output_stream(temporary) as stream:
            stream.write(data)
        os.replace(temporary, path)
    else:  # an object store PUT replaces the object atomically
        with filesystem_.open_output_stream(path) as stream:
            stream.write(data)
    return normalize(uri)


def write_text(uri: str | os.PathLike, text: str) -> str:
    return write_bytes(uri, text.encode("utf-8"))


def write_json(uri: str | os.PathLike, value: Any) -> str:
    return write_text(uri, json.dumps(value, indent=2, default=str))


def list_dir(uri: str | os.PathLike) -> list[str]:
    """Names of the entries directly under `uri` (empty when it does not exist), sorted."""
    from pyarrow import fs

    filesystem_, path = filesystem(uri)
    infos = filesystem_.get_file_info(fs.FileSelector(path, allow_not_found=True))
    return sorted(info.base_name for info in infos)


def delete(uri: str | os.PathLike) -> None:
    """Remove a file or a folder tree; nothing there is fine."""
    from pyarrow import fs

    filesystem_, path = filesystem(uri)
    kind = filesystem_.get_file_info(path).type
    if kind == fs.FileType.Directory:
        filesystem_.delete_dir(path)
    elif kind == fs.FileType.File:
        filesystem_.delete_file(path)


def upload_dir(local: str | os.PathLike, uri: str | os.PathLike, last: str | None = None) -> None:
    """Copy the files of local folder `local` (flat) to `uri`; `last` (a file name) is copied last,
    so its presence can mark the copy complete."""
    names = sorted(p.name for p in Path(local).iterdir() if p.is_file())
    if last in names:
        names = [n for n in names if n != last] + [last]
    for name in names:
        write_bytes(join(uri, name), (Path(local) / name).read_bytes())


@contextmanager
def local_copy(uri: str | os.PathLike) -> Iterator[Path]:
    """A local folder holding the files directly under `uri`: the folder itself when it is
    local, else a temporary download removed afterwards."""
    import shutil
    import tempfile

    text = normalize(uri)
    filesystem_, path = filesystem(text)
    from pyarrow import fs

    if isinstance(filesystem_, fs.LocalFileSystem):
        yield Path(path)
        return
    folder = Path(tempfile.mkdtemp(prefix="profile-features-"))
    try:
        for name in list_dir(text):
            (folder / name).write_bytes(read_bytes(join(text, name)))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class StorageUnreachable(ValueError):
    """A path's host does not resolve, or a local folder cannot be written; found in seconds."""


# Schemes whose URI authority is a bucket or container, not a host name.
_BUCKET_SCHEMES = {"s3", "s3a", "s3n", "gs", "gcs"}


def _resolves(host: str, timeout_s: float) -> bool:
    """Whether DNS knows `host`, within `timeout_s` (getaddrinfo itself has no timeout)."""
    import socket
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Timeout

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(socket.getaddrinfo, host, None).result(timeout=timeout_s)
        return True
    except (OSError, Timeout):
        return False
    finally:
        pool.shutdown(wait=False)


def check_reachable(uri: str | os.PathLike, what: str = "path", timeout_s: float = 5.0) -> None:
    """Fail fast where a job would otherwise fail after minutes of work: a host that does not
    resolve (hdfs://namenode/..., an S3 endpoint in AWS_ENDPOINT_URL), or a local folder that
    cannot be created or written. Whether the path exists is the caller's question.

    Raises:
        StorageUnreachable: naming the path, the host and what to change.
    """
    text = str(uri)
    if not is_uri(text) or text.lower().startswith("file://"):
        local = Path(urlparse(text).path if is_uri(text) else normalize(text))
        parent = next((p for p in (local, *local.parents) if p.exists()), None)
        if parent is not None and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
            if what == "data_dir":  # inputs are only read
                raise StorageUnreachable(f"{what} {text}: cannot write under {parent} (permissions, or not a folder)")
        return
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    hosts = []
    if scheme in _S3_SCHEMES:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        if endpoint:
            hosts.append((urlparse(endpoint).hostname or endpoint, "AWS_ENDPOINT_URL"))
    elif scheme not in _BUCKET_SCHEMES and parsed.hostname:
        hosts.append((parsed.hostname, "the URI"))
    for host, source in hosts:
        if not _resolves(host, timeout_s):
            raise StorageUnreachable(
                f"{what} {text}: the host {host!r} (from {source}) does not resolve; check the name "
                f"(hdfs://<namenode>:<port>/..., or the S3 endpoint) or this machine's DNS"
            )
