"""Finding and reading `run_date=` partitions of a table without Spark.

The freshness tools compare snapshots the batch jobs already wrote, on one machine: the
drift report reads its partitions batch by batch (`iter_run`), in bounded memory. Paths
may be local or URIs pyarrow understands (hdfs://, s3://).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from profile_features import storage
from profile_features.profiles.store import store_fs

__all__ = [
    "RunNotFound",
    "table_root",
    "list_runs",
    "partition_path",
    "read_run",
    "iter_run",
    "pick_runs",
    "newest_run_before",
]


class RunNotFound(FileNotFoundError):
    """A table or one of its `run_date=` partitions is not there; the message names the folder."""


def table_root(data_dir: str | Path, table: str) -> str:
    """`<data_dir>/<table>`: a URI, or an absolute path for local ones (pyarrow wants them)."""
    return storage.join(data_dir, table)


def list_runs(table: str) -> list[str]:
    """Run dates of the table's `run_date=` partitions, oldest first (empty when the table is absent)."""
    from pyarrow import fs

    filesystem, root = store_fs(table)
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    return sorted(
        i.base_name.split("=", 1)[1]
        for i in infos
        if i.type == fs.FileType.Directory and i.base_name.startswith("run_date=")
    )


def partition_path(table: str, run_date: str) -> str:
    return f"{table.rstrip('/')}/run_date={run_date}"


def _dataset(table: str, run_date: str, columns: Sequence[str] | None):
    if run_date not in list_runs(table):
        raise RunNotFound(f"{partition_path(table, run_date)}: no such run (runs there: {list_runs(table) or 'none'})")
    filesystem, root = store_fs(partition_path(table, run_date))
    dataset = ds.dataset(root, filesystem=filesystem, format="parquet", exclude_invalid_files=True)
    if columns is not None:
        present = set(dataset.schema.names)
        columns = [c for c in columns if c in present]
    return dataset, columns


def read_run(table: str, run_date: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One partition as pandas (only `columns` when given; absent ones are skipped).

    Raises:
        RunNotFound: naming the partition folder and the runs that do exist.
    """
    dataset, columns = _dataset(table, run_date, columns)
    return dataset.to_table(columns=columns).to_pandas()


def iter_run(
    table: str, run_date: str, columns: Sequence[str] | None = None, batch_rows: int = 65_536
) -> Iterator[pd.DataFrame]:
    """One partition as pandas batches of at most `batch_rows` rows (memory independent of the run's size).

    Raises:
        RunNotFound: naming the partition folder and the runs that do exist (when the iterator is created).
    """
    dataset, columns = _dataset(table, run_date, columns)
    return (batch.to_pandas() for batch in dataset.to_batches(columns=columns, batch_size=batch_rows))


def pick_runs(table: str, reference: str | None = None, current: str | None = None) -> tuple[str, str]:
    """(reference, current): by default the two newest runs; `current` alone means
    "that run against the one before it".

    Raises:
        RunNotFound: when the table has fewer than two runs or a named run is missing.
    """
    runs = list_runs(table)
    for name in (reference, current):
        if name is not None and name not in runs:
            raise RunNotFound(f"{partition_path(table, name)}: no such run (runs there: {runs or 'none'})")
    if current is None:
        if not runs:
            raise RunNotFound(f"{table}: need two runs to compare, found none")
        current = runs[-1]
    if reference is None:
        earlier = [r for r in runs if r < current]
        if not earlier:
            raise RunNotFound(f"{table}: need two runs to compare, found {runs or 'none'}")
        reference = earlier[-1]
    if reference == current:
        raise ValueError(f"{table}: reference and current are the same run {current}")
    return reference, current


def newest_run_before(table: str, run_date: str, inclusive: bool = True) -> str | None:
    """The newest run at or before (strictly before, unless `inclusive`) `run_date`, if any."""
    runs = [r for r in list_runs(table) if r < run_date or (inclusive and r == run_date)]
    return runs[-1] if runs else None
