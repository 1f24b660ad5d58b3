"""Reading the snapshots (`run_date` partitions) of a table without Spark.

The freshness tools compare snapshots the batch jobs already wrote, on one machine: the
drift report reads its partitions batch by batch (`iter_run`), in bounded memory. Tables and
their partitions come from the catalogue; `data_dir` may be local or a URI pyarrow understands
(hdfs://, s3://).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import pyarrow.dataset as ds

from profile_features.catalogue import DataDir, Table
from profile_features.profiles.store import store_fs

__all__ = ["RunNotFound", "read_run", "iter_run", "pick_runs"]


class RunNotFound(FileNotFoundError):
    """A table or one of its `run_date=` partitions is not there; the message names the folder."""


def _no_such_run(data: DataDir, table: Table, run_date: str, runs: list[str]) -> RunNotFound:
    return RunNotFound(f"{data.partition(table, run_date)}: no such run (runs there: {runs or 'none'})")


def _dataset(data: DataDir, table: Table, run_date: str, columns: Sequence[str] | None):
    runs = data.run_dates(table)
    if run_date not in runs:
        raise _no_such_run(data, table, run_date, runs)
    filesystem, root = store_fs(data.partition(table, run_date))
    dataset = ds.dataset(root, filesystem=filesystem, format="parquet", exclude_invalid_files=True)
    if columns is not None:
        present = set(dataset.schema.names)
        columns = [c for c in columns if c in present]
    return dataset, columns


def read_run(data: DataDir, table: Table, run_date: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One partition as pandas (only `columns` when given; absent ones are skipped).

    Raises:
        RunNotFound: naming the partition folder and the runs that do exist.
    """
    dataset, columns = _dataset(data, table, run_date, columns)
    return dataset.to_table(columns=columns).to_pandas()


def iter_run(
    data: DataDir, table: Table, run_date: str, columns: Sequence[str] | None = None, batch_rows: int = 65_536
) -> Iterator[pd.DataFrame]:
    """One partition as pandas batches of at most `batch_rows` rows (memory independent of the run's size).

    Raises:
        RunNotFound: naming the partition folder and the runs that do exist (when the iterator is created).
    """
    dataset, columns = _dataset(data, table, run_date, columns)
    return (batch.to_pandas() for batch in dataset.to_batches(columns=columns, batch_size=batch_rows))


def pick_runs(data: DataDir, table: Table, reference: str | None = None, current: str | None = None) -> tuple[str, str]:
    """(reference, current): by default the two newest runs; `current` alone means
    "that run against the one before it".

    Raises:
        RunNotFound: when the table has fewer than two runs or a named run is missing.
    """
    runs = data.run_dates(table)
    for name in (reference, current):
        if name is not None and name not in runs:
            raise _no_such_run(data, table, name, runs)
    root = data.root(table)
    if current is None:
        if not runs:
            raise RunNotFound(f"{root}: need two runs to compare, found none")
        current = runs[-1]
    if reference is None:
        earlier = [r for r in runs if r < current]
        if not earlier:
            raise RunNotFound(f"{root}: need two runs to compare, found {runs or 'none'}")
        reference = earlier[-1]
    if reference == current:
        raise ValueError(f"{root}: reference and current are the same run {current}")
    return reference, current
