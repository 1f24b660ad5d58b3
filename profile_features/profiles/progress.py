"""Progress of a profile run, followed from the driver while the workers generate.

Workers write each checkpoint as one file `parts/part-<run>-<uuid>.parquet` (see `store`), with the
calls, tokens and status of every user in it. The driver lists this run's files every few seconds and
adds up the new ones: users done of the total, calls, tokens in/out, fallbacks, ETA. That works the
same on a cluster (the files are on shared storage) and needs nothing from the workers but the
checkpoints they write anyway.
"""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from profile_features.profiles.store import list_parts, store_fs
from profile_features.progress import PolledProgress

__all__ = ["GenerationProgress"]

_COLUMNS = ["status", "calls", "tokens_in", "tokens_out"]


class GenerationProgress(PolledProgress):
    """Context manager: follows run `run_id`'s checkpoints under `cache_path` until exit.

    Args:
        cache_path: the profile cache (any storage URI).
        run_id: this run's id (its checkpoint files carry it).
        total: histories to generate in this run.
        interval: seconds between polls; log_every: seconds between log lines.
    """

    logger = logging.getLogger(__name__)

    def __init__(self, cache_path: str, run_id: str, total: int, interval: float = 2.0, log_every: float = 30.0):
        super().__init__("profiles", total, "history", "histories", interval, log_every)
        self.cache_path, self.run_id = cache_path, run_id
        self.extra = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "fallbacks": 0}
        self._seen: set[str] = set()

    @property
    def totals(self) -> dict:
        return {"users": self.done, **self.extra}

    def poll(self) -> dict:
        """Add up this run's checkpoint files not read yet; returns the running totals."""
        filesystem, _ = store_fs(self.cache_path)
        marker = f"part-{self.run_id}-"
        for path in list_parts(self.cache_path):
            if path in self._seen or marker not in path.rsplit("/", 1)[-1]:
                continue
            try:
                table = pq.read_table(path, columns=_COLUMNS, filesystem=filesystem)
            except FileNotFoundError:  # compacted away between listing and reading
                continue
            self._seen.add(path)
            frame = table.to_pandas()
            self.done += len(frame)
            self.extra["fallbacks"] += int((frame["status"] == "fallback").sum())
            for column in ("calls", "tokens_in", "tokens_out"):
                self.extra[column] += int(frame[column].fillna(0).sum())
        return self.totals
