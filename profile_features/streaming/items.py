"""One micro-batch of the item stream: new catalogue items get their semantic features without a retrain.

validate (the batch catalogue rules) -> `stream/items` and `stream/item_rejects` files -> text embedding,
semantic columns, content-only student vector (streaming/item_features.py) -> the stream partition of
item_text_embeddings, item_semantic and item_student -> the Feast online store (item_text, item_semantic,
item_student views). Accepted items also join the catalogue the event stream validates against.

Every row of micro-batch N is stamped with the newest arrival time of its rows (files' modification
times, Kafka's record times), at least the snapshot's cutoff: a replay of N stamps the same time, and a
streamed row of an item the snapshot already has wins over the snapshot's row online (ties go through).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from profile_features import schemas, storage
from profile_features.catalogue import (
    ENCODERS,
    ITEM_SEMANTIC,
    ITEM_STUDENT,
    ITEM_TEXT_EMBEDDINGS,
    ITEMS,
    STREAM_ITEM_REJECTS,
    STREAM_ITEMS,
    STREAM_PARTITION,
    TRANSFORMS,
    DataDir,
    Snapshot,
)
from profile_features.config import InputRules, JobConfig
from profile_features.embeddings import cached_encoder, default_model_path, encoder_name
from profile_features.encoder_backends import choose_backend
from profile_features.spark.common import ddl, in_every_task_slot, threads_per_task
from profile_features.spark.io import read_table
from profile_features.streaming.files import has_batch_files, write_batch_file
from profile_features.streaming.item_features import ItemSide, featurize_items, item_feature_schema
from profile_features.streaming.online import ONLINE_COUNTS, online_writer
from profile_features.streaming.source import ARRIVED

__all__ = ["ItemBatchCounts", "ItemMicroBatch", "encoder_choice", "item_side", "known_items"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ItemBatchCounts:
    batch_id: int
    run_date: str
    read: int
    accepted: int
    rejected_by_reason: dict[str, int]
    online_written: dict[str, int]  # per view
    online_stale: dict[str, int]
    feature_time: str
    seconds: float

    def summary(self) -> dict:
        return dict(self.__dict__)


def known_items(spark, data_dir: str):
    """`item_id` of every item the events may name: the validated catalogue and the items streamed since."""
    data = DataDir(data_dir)
    items = read_table(spark, data.root(ITEMS), schemas.ITEMS).select("item_id")
    streamed = data.root(STREAM_ITEMS)
    if has_batch_files(spark, streamed):
        items = items.unionByName(read_table(spark, streamed, schemas.STREAM_ITEMS).select("item_id"))
    return items


def _first_value(uri: str, column: str):
    """The first non-null value of `column` in the Parquet folder `uri` (None when absent): read on the driver,
    one column, stopping at the first batch that has one."""
    import pyarrow.dataset as ds

    filesystem, path = storage.filesystem(uri)
    dataset = ds.dataset(path, filesystem=filesystem, format="parquet")
    if column not in dataset.schema.names:
        return None
    for batch in dataset.to_batches(columns=[column]):
        values = batch.column(0).drop_null()
        if len(values):
            return values[0].as_py()
    return None


def item_side(config: JobConfig, snapshot: Snapshot) -> ItemSide:
    """What the snapshot's item features were made with (driver side, a few footers and values read)."""
    import pyarrow.dataset as ds

    from profile_features.spark.student_job import checkpoint_dir
    from profile_features.student.checkpoint import CURRENT_FILE

    texts = snapshot.path(ITEM_TEXT_EMBEDDINGS)
    if not storage.exists(texts):
        raise FileNotFoundError(f"{texts}: the snapshot has no item text embeddings; run the batch pipeline first")
    encoder = _first_value(texts, "encoder")
    semantic = transform = sid = None
    semantic_uri = snapshot.path(ITEM_SEMANTIC)
    if storage.exists(semantic_uri):
        filesystem, path = storage.filesystem(semantic_uri)
        semantic = ds.dataset(path, filesystem=filesystem, format="parquet").schema
        transforms = DataDir(snapshot.data_dir).root(TRANSFORMS)
        transform = storage.join(transforms, _first_value(semantic_uri, "item_transform_id"))
        sid_id = _first_value(semantic_uri, schemas.SID_TRANSFORM_ID)
        sid = storage.join(transforms, sid_id) if sid_id else None
    checkpoint = None
    if config.student.enabled:
        checkpoint = checkpoint_dir(config, snapshot)
        if not storage.exists(storage.join(checkpoint, CURRENT_FILE)):
            raise FileNotFoundError(f"{checkpoint}: no committed student checkpoint; run the batch pipeline first")
    return ItemSide(encoder, semantic, transform, sid, checkpoint)


@dataclass
class ItemMicroBatch:
    """The `foreachBatch` function of the item stream; keeps each batch's counts for the job's summary."""

    config: JobConfig
    batches: list[ItemBatchCounts] = field(default_factory=list)
    _choice: object = None  # the encoder backend: chosen by `warm_up`, else at the first micro-batch

    def __call__(self, raw, batch_id: int) -> None:
        started = time.monotonic()
        counts = self.process(raw, int(batch_id), started)
        self.batches.append(counts)
        log.info(
            "item stream batch %d: %d rows, %d accepted, online %s, %.1fs",
            counts.batch_id, counts.read, counts.accepted, counts.online_written, counts.seconds,
        )  # fmt: skip

    def warm_up(self, spark) -> pd.DataFrame:
        """Choose the encoder backend (its probes can take minutes) and start a Python worker in every task slot
        with the encoder loaded, the snapshot's student checkpoint loaded (an item's content-only vector) and
        the Feast store open with the item views read (all cached per worker, and Spark reuses its workers):
        otherwise the first new item after every start waits for all of them. Returns what each slot loaded
        (pid, encoder, checkpoint, project); a view the repo lacks fails here, before any item is read."""
        from profile_features.streaming.micro_batch import newest_snapshot

        found = newest_snapshot(self.config.data_dir)
        if found is None:
            return pd.DataFrame(columns=["pid", "encoder", "checkpoint", "project"])
        config, side = self.config, item_side(self.config, found[0])
        self._choice = choice = encoder_choice(config)
        embedding, stream = config.embedding, config.stream
        threads = threads_per_task(spark, embedding.threads_per_worker)  # as `_featured` loads them
        views = _online_views(stream, side) if stream.online else []

        def load() -> dict:
            from profile_features.streaming.online import opened_project
            from profile_features.student.scoring import load_student

            encoder = cached_encoder(embedding, threads, choice)
            checkpoint = load_student(side.checkpoint, num_threads=threads) if side.checkpoint else None
            project = opened_project(stream.feature_repo, stream.feature_store_yaml, views) if views else None
            return {"encoder": encoder.name, "checkpoint": checkpoint and checkpoint.checkpoint_id, "project": project}

        return in_every_task_slot(spark, load, "encoder string, checkpoint string, project string")

    def process(self, raw, batch_id: int, started: float) -> ItemBatchCounts:
        from pyspark.sql import functions as F

        from profile_features.spark.validate_rules import classified_items
        from profile_features.streaming.micro_batch import newest_snapshot

        spark, config, data = raw.sparkSession, self.config, DataDir(self.config.data_dir)
        found = newest_snapshot(config.data_dir)
        if found is None:
            raise FileNotFoundError(f"{config.data_dir}: no snapshot yet; run the batch pipeline first")
        snapshot, cutoff = found
        side = item_side(config, snapshot)
        raw = raw.persist()
        totals = raw.agg(F.count(F.lit(1)).alias("n"), F.max(F.unix_micros(ARRIVED)).alias("arrived")).first()
        as_of = max(pd.Timestamp(cutoff), pd.Timestamp(totals.arrived or 0, unit="us", tz="UTC"))
        rules = config.inputs.rules if config.inputs else InputRules()
        classified = classified_items(raw.drop(ARRIVED), rules).persist()
        by_reason = {
            r.reject_reason: r.n
            for r in classified.groupBy("reject_reason").agg(F.count(F.lit(1)).alias("n")).collect()
        }
        accepted_count = by_reason.pop(None, 0)
        if totals.n != accepted_count + sum(by_reason.values()):  # rows vanished or were doubled: write nothing
            raise RuntimeError(f"item stream batch {batch_id}: read {totals.n} rows but accounted for {accepted_count}")
        batch = F.lit(batch_id).cast("long").alias("stream_batch")
        rejects = (
            classified.where("reject_reason IS NOT NULL")
            .selectExpr("'stream_items' AS table", "source_file", "reject_reason AS reason", "record")
            .select("*", batch)
        )
        write_batch_file(rejects, config.data_dir, data.root(STREAM_ITEM_REJECTS), batch_id)
        accepted = classified.where("reject_reason IS NULL").select(*schemas.ITEMS.names, batch)
        items_file = write_batch_file(accepted, config.data_dir, data.root(STREAM_ITEMS), batch_id)
        classified.unpersist()
        raw.unpersist()

        # A micro-batch's items are few: their wide rows are cached, computed once for the three tables and
        # the online write (a cache evicted under pressure recomputes the same values).
        featured = self._featured(spark, spark.read.parquet(items_file), side, as_of).persist()
        for table, columns in self._tables(side):
            write_batch_file(
                featured.select(*columns), config.data_dir, data.partition(table, STREAM_PARTITION), batch_id
            )
        written: dict[str, int] = {}
        stale: dict[str, int] = {}
        views = _online_views(config.stream, side)
        if config.stream.online and views and accepted_count:
            stream = config.stream
            counts = featured.repartition(max(1, min(spark.sparkContext.defaultParallelism, 4))).mapInPandas(
                online_writer(stream.feature_repo, stream.feature_store_yaml, views, key="item_id"), ONLINE_COUNTS
            )
            for row in counts.collect():
                written[row.view] = written.get(row.view, 0) + row.written
                stale[row.view] = stale.get(row.view, 0) + row.stale
        featured.unpersist()
        return ItemBatchCounts(
            batch_id=batch_id,
            run_date=snapshot.run_date,
            read=totals.n,
            accepted=accepted_count,
            rejected_by_reason=by_reason,
            online_written=written,
            online_stale=stale,
            feature_time=as_of.isoformat(),
            seconds=round(time.monotonic() - started, 3),
        )

    @staticmethod
    def _tables(side: ItemSide):
        """(table, its columns) of the item tables the snapshot has, in the wide row's column order."""
        wide = item_feature_schema(side).names
        tables = [(ITEM_TEXT_EMBEDDINGS, schemas.ITEM_TEXT_EMBEDDINGS.names)]
        if side.semantic is not None:
            tables.append((ITEM_SEMANTIC, side.semantic.names))
        if side.checkpoint:
            tables.append((ITEM_STUDENT, schemas.ITEM_STUDENT.names))
        return [(table, [c for c in columns if c in wide]) for table, columns in tables]

    def _featured(self, spark, items, side: ItemSide, as_of: pd.Timestamp):
        """The wide feature rows of `items` (one pandas function per partition; models loaded once per worker)."""
        config = self.config
        embedding = config.embedding
        threads = threads_per_task(spark, embedding.threads_per_worker)
        if self._choice is None:
            self._choice = encoder_choice(config)
        choice = self._choice
        sanitize = config.profile.sanitize

        def partition(batches):
            encoder = cached_encoder(embedding, threads, choice)
            for frame in batches:
                yield featurize_items(frame, side, encoder, as_of, sanitize, threads)

        slots = spark.sparkContext.defaultParallelism
        return items.repartition(slots).mapInPandas(partition, schema=ddl(item_feature_schema(side)))


def encoder_choice(config: JobConfig):
    """The encoder backend the batch embedding stage chooses for `config` (driver side), so a streamed item's
    vector is the snapshot's kind (`featurize_items` checks the name)."""
    embedding = config.embedding
    return choose_backend(
        embedding,
        embedding.export_dir or DataDir(config.data_dir).root(ENCODERS),
        embedding.model_path or default_model_path(),
        encoder_name(embedding.model_path),
    )


def _online_views(stream, side: ItemSide) -> list[str]:
    """The configured item views the snapshot has features for (the repo's names, prefix included)."""
    views = [stream.item_text_view]
    views.append(stream.item_semantic_view if side.semantic is not None else None)
    views.append(stream.item_student_view if side.checkpoint else None)
    return [v for v in views if v]
