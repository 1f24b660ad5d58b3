"""The streaming refresh as a job: start the event query (and the item query), run until stopped (or caught
up), summarise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from profile_features.catalogue import STREAM_CHECKPOINT, STREAM_ITEMS_CHECKPOINT, DataDir
from profile_features.config import JobConfig
from profile_features.spark.common import write_summary
from profile_features.spark.results import StageResult
from profile_features.streaming.items import ItemBatchCounts, ItemMicroBatch, item_side
from profile_features.streaming.micro_batch import BatchCounts, MicroBatch, newest_snapshot
from profile_features.streaming.source import read_event_stream, read_item_stream

__all__ = ["StreamResult", "run_stream", "start_item_stream", "start_stream"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamResult(StageResult):
    checkpoint: str | None
    batches: tuple[BatchCounts, ...]
    item_batches: tuple[ItemBatchCounts, ...] = ()

    def summary(self) -> dict:
        total = lambda key: sum(getattr(b, key) for b in self.batches)  # noqa: E731
        reasons: dict[str, int] = {}
        for b in self.batches:
            for reason, n in b.rejected_by_reason.items():
                reasons[reason] = reasons.get(reason, 0) + n
        return {
            "job": "stream_student",
            "checkpoint": self.checkpoint,
            "micro_batches": len(self.batches),
            "events": total("read"),
            "accepted": total("accepted"),
            "rejected_by_reason": reasons,
            "users_scored": total("users_scored"),
            "online_written": total("online_written"),
            "online_stale": total("online_stale"),
            "queued_for_refresh": total("queued_for_refresh"),
            "batches": [b.summary() for b in self.batches],
            "items": _item_summary(self.item_batches),
        }


def _item_summary(batches: tuple[ItemBatchCounts, ...]) -> dict:
    written: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for b in batches:
        for view, n in b.online_written.items():
            written[view] = written.get(view, 0) + n
        for reason, n in b.rejected_by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {
        "micro_batches": len(batches),
        "read": sum(b.read for b in batches),
        "accepted": sum(b.accepted for b in batches),
        "rejected_by_reason": reasons,
        "online_written": written,
        "batches": [b.summary() for b in batches],
    }


def _preflight(config: JobConfig) -> None:
    """What would otherwise fail at the first event, checked in seconds."""
    if config.stream.source is None and config.stream.items_source is None:
        raise ValueError(
            "stream.source is not set: point stream.source.path (or a Kafka source) at your events "
            "(and/or stream.items_source at new catalogue items)"
        )
    found = newest_snapshot(config.data_dir)
    if found is None:
        raise FileNotFoundError(f"{config.data_dir}: no snapshot with histories yet; run the batch pipeline first")
    if config.stream.items_source is not None:
        item_side(config, found[0])  # the snapshot's item tables and checkpoint are there
    repo = Path(config.stream.feature_repo)
    if config.stream.online and "://" not in config.stream.feature_repo and not (repo / "feature_store.yaml").exists():
        raise FileNotFoundError(f"{repo}: no feature_store.yaml (stream.feature_repo: the folder of `feast apply`)")


def _started(frame, processor, checkpoint: str, name: str, config: JobConfig):
    writer = frame.writeStream.foreachBatch(processor).option("checkpointLocation", checkpoint).queryName(name)
    if config.stream.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{config.stream.trigger_seconds} seconds")
    return writer.start()


def start_stream(spark, config: JobConfig):
    """(the running event query, its MicroBatch): for a caller that stops the query itself (benchmarks)."""
    _preflight(config)
    checkpoint = config.stream.checkpoint or DataDir(config.data_dir).root(STREAM_CHECKPOINT)
    processor = MicroBatch(config)
    log.info("stream: %d task slots warmed", len(processor.warm_up(spark)))
    frame = read_event_stream(spark, config.stream.source)
    return _started(frame, processor, checkpoint, "profile_features_stream", config), processor


def start_item_stream(spark, config: JobConfig):
    """(the running item query, its ItemMicroBatch)."""
    _preflight(config)
    checkpoint = config.stream.items_checkpoint or DataDir(config.data_dir).root(STREAM_ITEMS_CHECKPOINT)
    processor = ItemMicroBatch(config)
    log.info("item stream: %d task slots warmed", len(processor.warm_up(spark)))
    frame = read_item_stream(spark, config.stream.items_source)
    return _started(frame, processor, checkpoint, "profile_features_item_stream", config), processor


def run_stream(spark, config: JobConfig) -> StreamResult:
    """Run the event stream (and the item stream, when `stream.items_source` is set) until stopped, or with
    `stream.available_now` until both have caught up. A query that fails stops the other and raises."""
    spark.streams.resetTerminated()  # queries of earlier runs in this session do not end this one's wait
    events = items = None
    started = []
    try:
        if config.stream.items_source is not None:  # first: the events' catalogue includes what it accepts
            items = start_item_stream(spark, config)
            started.append(items[0])
        if config.stream.source is not None:
            events = start_stream(spark, config)
            started.append(events[0])
        log.info("stream started: %s", ", ".join(q.name for q in started))
        while any(q.isActive for q in started):
            spark.streams.awaitAnyTermination()  # raises the exception of a query that failed
            spark.streams.resetTerminated()
    finally:
        for query in started:
            if query.isActive:
                query.stop()
    checkpoint = (config.stream.checkpoint or DataDir(config.data_dir).root(STREAM_CHECKPOINT)) if events else None
    result = StreamResult(
        checkpoint, tuple(events[1].batches) if events else (), tuple(items[1].batches) if items else ()
    )
    write_summary(config, "stream_student", result.summary())
    return result
