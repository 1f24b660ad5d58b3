"""The streaming student refresh as a job: start the query, run until stopped (or caught up), summarise."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from profile_features.catalogue import STREAM_CHECKPOINT, DataDir
from profile_features.config import JobConfig
from profile_features.spark.common import write_summary
from profile_features.spark.results import StageResult
from profile_features.streaming.micro_batch import BatchCounts, MicroBatch, newest_snapshot
from profile_features.streaming.source import read_event_stream

__all__ = ["StreamResult", "run_stream", "start_stream"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamResult(StageResult):
    checkpoint: str
    batches: tuple[BatchCounts, ...]

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
        }


def _preflight(config: JobConfig) -> None:
    """What would otherwise fail at the first event, checked in seconds."""
    if config.stream.source is None:
        raise ValueError("stream.source is not set: point stream.source.path (or a Kafka source) at your events")
    if newest_snapshot(config.data_dir) is None:
        raise FileNotFoundError(f"{config.data_dir}: no snapshot with histories yet; run the batch pipeline first")
    repo = Path(config.stream.feature_repo)
    if config.stream.online and "://" not in config.stream.feature_repo and not (repo / "feature_store.yaml").exists():
        raise FileNotFoundError(f"{repo}: no feature_store.yaml (stream.feature_repo: the folder of `feast apply`)")


def start_stream(spark, config: JobConfig):
    """(the running StreamingQuery, its MicroBatch): for a caller that stops the query itself (benchmarks)."""
    _preflight(config)
    checkpoint = config.stream.checkpoint or DataDir(config.data_dir).root(STREAM_CHECKPOINT)
    processor = MicroBatch(config)
    writer = (
        read_event_stream(spark, config.stream.source)
        .writeStream.foreachBatch(processor)
        .option("checkpointLocation", checkpoint)
        .queryName("profile_features_stream")
    )
    if config.stream.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{config.stream.trigger_seconds} seconds")
    return writer.start(), processor


def run_stream(spark, config: JobConfig) -> StreamResult:
    """Run the stream until it is stopped (or, with `stream.available_now`, until it has caught up)."""
    query, processor = start_stream(spark, config)
    checkpoint = config.stream.checkpoint or DataDir(config.data_dir).root(STREAM_CHECKPOINT)
    log.info("stream started: %s -> %s (checkpoint %s)", config.stream.source.path, config.stream.user_view, checkpoint)
    try:
        query.awaitTermination()
    finally:
        if query.isActive:
            query.stop()
    result = StreamResult(checkpoint, tuple(processor.batches))
    write_summary(config, "stream_student", result.summary())
    return result
