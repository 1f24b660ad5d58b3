"""Under spark-submit, keep the driver's stdout for the result and its stderr for the logs.

spark-submit starts a Python driver with stderr merged into stdout (PythonRunner's
`redirectErrorStream`) and copies that one stream to its own stdout, so every log line, warning and
traceback lands in front of the JSON summary. `driver_streams()` sends this process's fd 2 to the
JVM's stderr instead: straight to it when that is a pipe or terminal (the driver's parent is the
JVM: /proc/<parent>/fd/2), or through the JVM's `System.err` when it is a file (a file reopened
here would have its own offset, and the JVM's next line would overwrite ours).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import threading
from collections.abc import Iterator

__all__ = ["driver_streams", "under_spark_submit"]

log = logging.getLogger(__name__)


def under_spark_submit() -> bool:
    """True when spark-submit launched this driver (it hands the driver a running JVM gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _same_file(a: int, b: int) -> bool:
    first, second = os.fstat(a), os.fstat(b)
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _parent_stderr() -> tuple[str, int | None]:
    """('direct', fd) to write to the JVM's stderr, ('jvm', None) to go through System.err, or ('', None)."""
    path = f"/proc/{os.getppid()}/fd/2"
    try:
        if not _same_file(1, 2):
            return "", None  # already apart (spark-submit did not merge them, or someone separated them)
        mode = os.stat(path).st_mode
    except OSError:
        return "", None
    if stat.S_ISREG(mode):
        return "jvm", None
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:  # a socket, or no permission
        return "jvm", None
    if _same_file(fd, 1):  # the JVM's stderr is our stdout as well: nothing to separate
        os.close(fd)
        return "", None
    return "direct", fd


class _ToJvmStderr:
    """A pipe on fd 2 whose bytes a thread writes to the JVM's System.err (its fd, its offset)."""

    def __init__(self, fallback: int):
        from pyspark import SparkContext

        SparkContext._ensure_initialized()  # under spark-submit: connects to its gateway
        self.err = SparkContext._jvm.System.err
        self.fallback = fallback
        self.read_fd, self.write_fd = os.pipe()
        self.thread = threading.Thread(target=self._run, name="stderr-to-jvm", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while chunk := os.read(self.read_fd, 1 << 16):
            try:
                self.err.write(bytearray(chunk), 0, len(chunk))
                self.err.flush()
            except Exception:  # noqa: BLE001 - the gateway is gone: the merged stream still reaches a person
                os.write(self.fallback, chunk)
        os.close(self.read_fd)

    def close(self) -> None:
        os.close(self.write_fd)
        self.thread.join(timeout=10)


@contextlib.contextmanager
def driver_streams() -> Iterator[None]:
    """While inside, under spark-submit, fd 2 (logs, warnings, tracebacks) reaches spark-submit's
    stderr and stdout carries only what is printed to it. Elsewhere it changes nothing."""
    mode, direct = _parent_stderr() if under_spark_submit() else ("", None)
    if not mode:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    forwarder = None
    try:
        if mode == "direct":
            os.dup2(direct, 2)
            os.close(direct)
        else:
            forwarder = _ToJvmStderr(fallback=saved)
            os.dup2(forwarder.write_fd, 2)
    except Exception as err:  # noqa: BLE001 - separating streams is a convenience, never a failure
        log.debug("stderr stays merged with stdout: %s", err)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if forwarder is not None:
            forwarder.close()
