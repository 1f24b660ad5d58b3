"""The few file system calls the commit protocol needs (spark/commit.py), behind one Protocol.

`HadoopFS` serves tables (any scheme Spark reads: HDFS, s3a, gs, file) through the session's JVM;
`LocalFS` serves local paths and `file:` URIs without Spark (tests, Feast-side readers).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Protocol
from urllib.parse import urlparse

__all__ = ["CommitFS", "LocalFS", "HadoopFS", "local_fs_for"]


class CommitFS(Protocol):
    def exists(self, path: str) -> bool: ...

    def rename(self, source: str, target: str) -> bool: ...

    def delete(self, path: str) -> None: ...

    def mkdirs(self, path: str) -> None: ...

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create `path` holding `data`; False (and nothing written) when it already exists."""
        ...

    def read(self, path: str) -> bytes | None: ...

    def age_s(self, path: str) -> float:
        """Seconds since `path` was last written (0.0 when it is gone)."""
        ...

    def list_names(self, folder: str) -> list[str]:
        """Names of the entries directly in `folder` ([] when it does not exist)."""
        ...


def _local_path(path: str) -> str:
    """`file:/x`, `file:///x` and `file://localhost/x` as `/x`; plain paths unchanged."""
    if path.startswith("file:"):
        parsed = urlparse(path)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{path}: a file: URI naming another host is not a local path")
        return parsed.path
    if "://" in path:
        raise ValueError(f"{path}: not a local path; use HadoopFS(spark) for this scheme")
    return path


class LocalFS:
    """Local paths and `file:` URIs through os calls (exclusive create is O_EXCL)."""

    def exists(self, path: str) -> bool:
        return os.path.exists(_local_path(path))

    def rename(self, source: str, target: str) -> bool:
        try:
            os.rename(_local_path(source), _local_path(target))
            return True
        except OSError:
            return False

    def delete(self, path: str) -> None:
        local = _local_path(path)
        if os.path.isdir(local) and not os.path.islink(local):
            shutil.rmtree(local, ignore_errors=True)
        elif os.path.lexists(local):
            try:
                os.remove(local)
            except FileNotFoundError:  # removed meanwhile by another repairer
                pass

    def mkdirs(self, path: str) -> None:
        os.makedirs(_local_path(path), exist_ok=True)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            handle = os.open(_local_path(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        return True

    def read(self, path: str) -> bytes | None:
        try:
            with open(_local_path(path), "rb") as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def age_s(self, path: str) -> float:
        try:
            return time.time() - os.path.getmtime(_local_path(path))
        except FileNotFoundError:
            return 0.0

    def list_names(self, folder: str) -> list[str]:
        try:
            return sorted(os.listdir(_local_path(folder)))
        except (FileNotFoundError, NotADirectoryError):
            return []


def local_fs_for(path: str) -> LocalFS:
    """A LocalFS when `path` is local (plain or `file:`); other schemes need HadoopFS(spark)."""
    _local_path(path)
    return LocalFS()


class HadoopFS:
    """Hadoop's FileSystem through the session's JVM: HDFS, s3a, gs, file. Local paths take the
    `LocalFS` calls (Hadoop's local create-if-absent is a check then a create, not exclusive)."""

    def __init__(self, spark):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, path: str):
        hadoop_path = self._jvm.org.apache.hadoop.fs.Path(path)
        return hadoop_path.getFileSystem(self._conf), hadoop_path

    def _local(self, path: str) -> str | None:
        fs, hadoop_path = self._fs(path)
        if fs.getUri().getScheme() != "file":
            return None
        return str(fs.makeQualified(hadoop_path).toUri().getPath())

    def exists(self, path: str) -> bool:
        fs, hadoop_path = self._fs(path)
        return bool(fs.exists(hadoop_path))

    def rename(self, source: str, target: str) -> bool:
        fs, source_path = self._fs(source)
        return bool(fs.rename(source_path, self._fs(target)[1]))

    def delete(self, path: str) -> None:
        fs, hadoop_path = self._fs(path)
        fs.delete(hadoop_path, True)

    def mkdirs(self, path: str) -> None:
        fs, hadoop_path = self._fs(path)
        fs.mkdirs(hadoop_path)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        local = self._local(path)
        if local is not None:
            return LocalFS().create_exclusive(local, data)
        from py4j.protocol import Py4JJavaError

        fs, hadoop_path = self._fs(path)
        try:
            stream = fs.create(hadoop_path, False)  # atomic create-if-absent on HDFS
        except Py4JJavaError as err:
            if "FileAlreadyExists" in str(err.java_exception):
                return False
            raise
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()
        return True

    def read(self, path: str) -> bytes | None:
        from py4j.protocol import Py4JJavaError

        fs, hadoop_path = self._fs(path)
        if not fs.exists(hadoop_path):
            return None
        try:
            stream = fs.open(hadoop_path)
        except Py4JJavaError as err:
            if "FileNotFound" in str(err.java_exception):  # no lock, or deleted meanwhile
                return None
            raise
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def age_s(self, path: str) -> float:
        fs, hadoop_path = self._fs(path)
        try:
            return time.time() - fs.getFileStatus(hadoop_path).getModificationTime() / 1000.0
        except Exception:  # gone meanwhile
            return 0.0

    def list_names(self, folder: str) -> list[str]:
        fs, hadoop_path = self._fs(folder)
        if not fs.exists(hadoop_path):
            return []
        return sorted(str(status.getPath().getName()) for status in fs.listStatus(hadoop_path))
