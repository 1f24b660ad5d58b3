"""The profile cache on disk, as the workers write it: checkpoint files, made atomic.

Layout under the cache path:
  parts/part-<run>-<uuid>.parquet   checkpoints written by workers while a run goes on
  compacted/                        the latest entry per key, rewritten after a run
Dead letters go to `<dead_letter_path>/run_date=<date>/part-<run>-<uuid>.parquet`.

Each file is written under a `_tmp` name and moved into place, so readers only ever
see whole files: a worker killed mid-write leaves at most a `_tmp` file nobody reads.
A user whose checkpoint was written is never generated again for the same key, so a
killed run loses only the users in flight; duplicates (a retried task) are harmless
because readers keep one entry per key.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from profile_features import storage
from profile_features.catalogue import partition_folder
from profile_features.histories import history_events
from profile_features.profiles.base import UserHistory
from profile_features.profiles.tables import DEAD_LETTERS, PROFILE_CACHE, RUN_STATS

__all__ = [
    "CheckpointWriter",
    "generate_checkpointed",
    "outcome_rows",
    "stats_row",
    "GeneratorKey",
    "list_parts",
    "store_fs",
    "remove_tree",
]

GeneratorKey = tuple[str, str, str]  # (generator, model, prompt_version)


def store_fs(path: str):
    """(pyarrow FileSystem, path within it) for a local path or any storage URI."""
    filesystem, root = storage.filesystem(path)
    return filesystem, root.rstrip("/")


def list_parts(cache_path: str) -> list[str]:
    """Checkpoint files currently under `<cache_path>/parts` (full paths)."""
    from pyarrow import fs

    filesystem, root = store_fs(cache_path)
    infos = filesystem.get_file_info(fs.FileSelector(f"{root}/parts", allow_not_found=True))
    return [i.path for i in infos if i.type == fs.FileType.File and i.base_name.startswith("part-")]


def remove_tree(path: str) -> None:
    filesystem, root = store_fs(path)
    try:
        filesystem.delete_dir(root)
    except FileNotFoundError:
        pass


class CheckpointWriter:
    """Writes cache entries and dead letters from a worker, one atomic file per flush."""

    def __init__(self, cache_path: str, dead_letter_path: str, run_id: str, run_date: str):
        self.run_id, self.run_date = run_id, run_date
        self._cache = store_fs(cache_path)
        self._dead = store_fs(dead_letter_path)

    def _write(self, target, directory: str, table: pa.Table) -> None:
        filesystem, root = target
        name = f"part-{self.run_id}-{uuid.uuid4().hex}.parquet"
        folder = f"{root}/{directory}"
        tmp = f"{root}/_tmp/{name}"
        filesystem.create_dir(f"{root}/_tmp", recursive=True)
        filesystem.create_dir(folder, recursive=True)
        pq.write_table(table, tmp, filesystem=filesystem)
        filesystem.move(tmp, f"{folder}/{name}")

    def write(self, cache_rows: list[dict], dead_rows: list[dict]) -> None:
        if dead_rows:  # first: a profile is never cached without its dead letters
            dead = pa.Table.from_pylist(dead_rows, schema=DEAD_LETTERS)
            self._write(self._dead, partition_folder(self.run_date), dead)
        if cache_rows:
            self._write(self._cache, "parts", pa.Table.from_pylist(cache_rows, schema=PROFILE_CACHE))


def outcome_rows(outcome, key: GeneratorKey, run_id: str) -> tuple[dict, list[dict]]:
    """(cache row, dead-letter rows) of one `UserOutcome`."""
    now = datetime.now(timezone.utc)
    generator, model, prompt_version = key
    keys = {
        "history_hash": outcome.history_hash,
        "key_generator": generator,
        "key_model": model,
        "key_prompt_version": prompt_version,
    }
    p = outcome.profile
    cache = {
        **keys,
        "profile_text": p.text,
        "generator": p.generator,
        "model": p.model,
        "prompt_version": p.prompt_version,
        "status": outcome.status,
        "fallback_reason": outcome.fallback_reason,
        "calls": outcome.calls,
        "tokens_in": outcome.tokens_in,
        "tokens_out": outcome.tokens_out,
        "run_id": run_id,
        "created_at": now,
    }
    dead = [
        {
            "run_id": run_id,
            "user_id": outcome.user_id,
            **keys,
            "reason": r.reason,
            "detail": r.detail[:1000],
            "output_text": r.text,
            "created_at": now,
        }
        for r in outcome.rejections
    ]
    return cache, dead


def stats_row(outcomes: list, seconds: float) -> dict:
    reasons: Counter = Counter(r.reason for o in outcomes for r in o.rejections)
    total = lambda name: int(sum(getattr(o, name) for o in outcomes))  # noqa: E731
    fallbacks = sum(o.status == "fallback" for o in outcomes)
    return {
        "users": len(outcomes),
        "ok": len(outcomes) - fallbacks,
        "fallbacks": fallbacks,
        "calls": total("calls"),
        "retries": total("retries"),
        "regenerations": total("regenerations"),
        "rejects": sum(n for r, n in reasons.items() if not r.startswith("fallback:")),
        "tokens_in": total("tokens_in"),
        "tokens_out": total("tokens_out"),
        "chunked_users": sum(o.chunks > 1 for o in outcomes),
        "reasons_json": json.dumps(dict(sorted(reasons.items()))),
        "models_json": json.dumps(dict(sorted(sum((o.reported_models for o in outcomes), Counter()).items()))),
        "seconds": seconds,
    }


def generate_checkpointed(
    batches: Iterable[pd.DataFrame], generator, key: GeneratorKey, writer: CheckpointWriter, every: int
) -> Iterator[pd.DataFrame]:
    """Generate profiles for HISTORIES batches, checkpointing every `every` users.

    Yields:
        One RUN_STATS row per checkpoint written.
    """
    for batch in batches:
        histories = [
            UserHistory(r.user_id, history_events(r.history_json), r.history_hash)
            for r in batch.itertuples(index=False)
        ]
        buffer, started = [], time.monotonic()
        for outcome in generator.run(histories):
            buffer.append(outcome)
            if len(buffer) >= every:
                yield _flush(buffer, key, writer, started)
                buffer, started = [], time.monotonic()
        if buffer:
            yield _flush(buffer, key, writer, started)


def _flush(outcomes: list, key: GeneratorKey, writer: CheckpointWriter, started: float) -> pd.DataFrame:
    cache_rows, dead_rows = [], []
    for outcome in outcomes:
        cache, dead = outcome_rows(outcome, key, writer.run_id)
        cache_rows.append(cache)
        dead_rows.extend(dead)
    writer.write(cache_rows, dead_rows)
    return pd.DataFrame([stats_row(outcomes, time.monotonic() - started)], columns=RUN_STATS.names)
