"""User-keyed files outside `data_dir`: refresh plans written by `refresh-plan --out`, the refresh list a
job reads (`profile.only_users`), exports a team keeps beside the lake.

Each is a Parquet or CSV file (a path or URI) with a `user_id` column; the rows of forgotten users are
removed, every other row is kept as it was (CSV values are copied as text, never re-parsed). The file
is streamed in batches (a plan can be large), written beside itself and moved over it only when a row
goes, so a kill leaves the old file or the new one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from profile_features import storage

__all__ = ["check_file", "forget_in_file"]

USER_COLUMN = "user_id"
_BATCH_ROWS = 65_536


def check_file(path: str) -> None:
    """Raise, naming the file, unless `path` is a Parquet or CSV file with a `user_id` column (checked before
    anything is forgotten, so a typo does not stop a request half-way).

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: not a .parquet / .csv file, or no `user_id` column.
    """
    if not storage.exists(path):
        raise FileNotFoundError(f"forget --file {path}: no such file")
    lower = str(path).lower()
    if not lower.endswith((".parquet", ".csv")):
        raise ValueError(f"forget --file {path}: a .parquet or .csv file with a {USER_COLUMN} column is expected")
    columns = _parquet_columns(path) if lower.endswith(".parquet") else _csv_header(path)
    if USER_COLUMN not in columns:
        raise ValueError(f"forget --file {path}: no {USER_COLUMN} column (columns: {columns})")


def forget_in_file(path: str, user_ids: Iterable[str]) -> int:
    """Remove the rows of `user_ids` from the Parquet or CSV file at `path` (`check_file`); rows removed."""
    check_file(path)
    ids = frozenset(str(u) for u in user_ids)
    if str(path).lower().endswith(".parquet"):
        return _forget_in_parquet(str(path), ids)
    return _forget_in_csv(str(path), ids)


def _parquet_columns(path: str) -> list[str]:
    import pyarrow.parquet as pq

    filesystem, location = storage.filesystem(path)
    with filesystem.open_input_file(location) as handle:
        return list(pq.ParquetFile(handle).schema_arrow.names)


def _csv_header(path: str) -> list[str]:
    filesystem, location = storage.filesystem(path)
    with filesystem.open_input_stream(location) as raw:
        return next(csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")), [])


def _replace(path: str, staged: str) -> None:
    filesystem, target = storage.filesystem(path)
    _, source = storage.filesystem(staged)
    filesystem.move(source, target)


def _forget_in_parquet(path: str, ids: frozenset[str]) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    filesystem, location = storage.filesystem(path)

    def batches():
        with filesystem.open_input_file(location) as handle:
            source = pq.ParquetFile(handle)
            for batch in source.iter_batches(batch_size=_BATCH_ROWS):
                users = pc.cast(batch.column(USER_COLUMN), pa.string())
                yield batch, pc.fill_null(pc.is_in(users, value_set=pa.array(sorted(ids), pa.string())), False)

    removed = sum(pc.sum(hits).as_py() or 0 for _, hits in batches())
    if not removed:
        return 0
    staged = f"{path}.forget-staging"
    _, staged_location = storage.filesystem(staged)
    writer = None
    with filesystem.open_output_stream(staged_location) as out:
        for batch, hits in batches():
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_batch(batch.filter(pc.invert(hits)))
        writer.close()
    _replace(path, staged)
    return removed


def _forget_in_csv(path: str, ids: frozenset[str]) -> int:
    filesystem, location = storage.filesystem(path)

    def rows():
        with filesystem.open_input_stream(location) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            header = next(reader)
            column = header.index(USER_COLUMN)
            yield header, False
            for row in reader:
                yield row, column < len(row) and row[column].strip() in ids

    removed = sum(hit for _, hit in rows())
    if not removed:
        return 0
    staged = f"{path}.forget-staging"
    _, staged_location = storage.filesystem(staged)
    with filesystem.open_output_stream(staged_location) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        for row, hit in rows():
            if not hit:
                writer.writerow(row)
        text.flush()
        text.detach()
    _replace(path, staged)
    return removed
