"""The batch sources of our feature views: FileSource or SparkSource from settings, with a fixed `meta`.

A source reads a catalogue table's root (every snapshot's partition), so the Feast repo sees the layout the
jobs write."""

from __future__ import annotations

from datetime import datetime, timezone

from profile_features.catalogue import RUN_DATE, DataDir, Table
from profile_features.feast.settings import FeastSettings

__all__ = ["SOURCE_META_TIMESTAMP", "source_for"]

# The `meta` every source of ours carries in the registry (see `_StableSourceMeta`).
SOURCE_META_TIMESTAMP = datetime(2024, 1, 1, tzinfo=timezone.utc)


class _StableSourceMeta:
    """Writes a fixed created/last-updated time into a source's proto.

    Feast stamps a source with the time it was constructed (and `apply` with the time it was
    registered), and embeds that `meta` in every feature view's spec. Once a view has
    materialization intervals, `feast apply` compares the specs field by field, finds only those
    stamps differ, and prints the whole source twice as "Updated feature view" on every run,
    though nothing changed. Our sources are rebuilt from config on every import: their spec is the
    config, so their meta is fixed. A class (not a lambda) so the source still pickles.
    """

    def __call__(self, proto) -> None:
        proto.meta.created_timestamp.FromDatetime(SOURCE_META_TIMESTAMP)
        proto.meta.last_updated_timestamp.FromDatetime(SOURCE_META_TIMESTAMP)


def _stable(source):
    """`source` with the fixed meta (an instance override of Feast's `DataSource._set_timestamps_in_proto`,
    which every `to_proto` calls; the class stays Feast's, so a registry reader needs no plugin)."""
    if not callable(getattr(source, "_set_timestamps_in_proto", None)):
        raise RuntimeError("this Feast version has no DataSource._set_timestamps_in_proto; update _stable")
    source.created_timestamp = source.last_updated_timestamp = SOURCE_META_TIMESTAMP
    source._set_timestamps_in_proto = _StableSourceMeta()
    return source


def source_for(settings: FeastSettings, table: Table, join_key: str):
    """The batch source of `table` under `data_dir` (or its Spark table), its key column mapped onto the entity's
    `join_key`, with a stable meta."""
    mapping = {table.key: join_key} if join_key != table.key else None
    name = f"{settings.name_prefix}{table.name}_source"
    path = DataDir(settings.data_dir).root(table)
    if settings.source == "spark":
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

        if table.name in settings.spark_tables:
            return _stable(
                SparkSource(
                    name=name,
                    table=settings.spark_tables[table.name],
                    timestamp_field="event_timestamp",
                    field_mapping=mapping,
                )
            )
        return _stable(
            SparkSource(
                name=name,
                path=path,
                file_format="parquet",
                timestamp_field="event_timestamp",
                date_partition_column=RUN_DATE,
                field_mapping=mapping,
            )
        )
    from feast import FileSource
    from feast.data_format import ParquetFormat

    return _stable(
        FileSource(
            name=name,
            path=path,
            file_format=ParquetFormat(),
            timestamp_field="event_timestamp",
            field_mapping=mapping,
        )
    )
