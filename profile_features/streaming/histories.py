"""The touched users' recent histories: the snapshot's history, then every event streamed since its cutoff.

Recomputed from all streamed events of micro-batches up to the current one, deduplicated on
(user, item, timestamp), so a replayed micro-batch or an event delivered twice changes nothing, and a late
event (older than one already applied) takes its place in time order.
"""

from __future__ import annotations

__all__ = ["touched_histories"]


def touched_histories(touched, base_histories, events, cutoff, max_length: int):
    """One row per touched user: `user_id`, `item_ids` (oldest -> newest, at most `max_length`), `event_timestamp`
    (their newest streamed event: the feature time), `streamed_events` (how many since the cutoff).

    Args:
        touched: DataFrame of `user_id` (distinct) that this micro-batch has events for.
        base_histories: the snapshot's HISTORIES rows (`user_id`, `item_ids`); a new user has none.
        events: streamed events (`user_id`, `item_id`, `timestamp`), any micro-batch, duplicates allowed.
        cutoff: the snapshot's cutoff; events before it are the snapshot's (its histories hold them).
    """
    from pyspark.sql import functions as F

    since = (
        events.join(F.broadcast(touched), "user_id", "left_semi")
        .where(F.col("timestamp") >= F.lit(cutoff))
        .select("user_id", "item_id", "timestamp")
        .dropDuplicates(["user_id", "item_id", "timestamp"])
        .groupBy("user_id")
        .agg(
            F.sort_array(F.collect_list(F.struct("timestamp", "item_id"))).alias("_events"),
            F.max("timestamp").alias("event_timestamp"),
        )
    )
    base = base_histories.join(F.broadcast(touched), "user_id", "left_semi").select(
        "user_id", F.col("item_ids").alias("_base")
    )
    items = F.concat(F.coalesce(F.col("_base"), F.array().cast("array<string>")), F.col("_events.item_id"))
    return (
        since.join(base, "user_id", "left")
        .withColumn("_all", items)
        .select(
            "user_id",
            F.when(F.size("_all") > max_length, F.slice("_all", -max_length, max_length))
            .otherwise(F.col("_all"))
            .alias("item_ids"),
            "event_timestamp",
            F.size("_events").alias("streamed_events"),
        )
    )
