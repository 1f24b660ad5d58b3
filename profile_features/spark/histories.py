"""HISTORIES as native Spark: a window for each user's last events, one aggregation, JSON and hash in the JVM.

No Python worker touches an event, so the stage costs about what a plain `groupBy` + `collect_list`
costs. It writes the same bytes as the pandas reference `profile_features.histories.build_histories`
(tests compare the hashes), so a history's hash, the profile cache's key, does not depend on which
of the two built it.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["history_rows"]


def _event_json():
    """One event as compact JSON, keys in sorted order, nulls kept: `histories._event_dict`'s bytes."""
    from pyspark.sql import functions as F

    utc_wall_time = F.to_utc_timestamp("timestamp", F.current_timezone())  # renders as UTC whatever the session zone
    rating = F.when(~F.isnan("rating"), F.col("rating"))
    event = F.struct(  # field order = sorted keys
        F.coalesce("description", F.lit("")).alias("description"),
        F.col("event_type").alias("event_type"),
        F.filter(F.split(F.coalesce("genres", F.lit("")), r"\|"), lambda g: g != "").alias("genres"),
        F.col("item_id").alias("item_id"),
        rating.alias("rating"),
        F.date_format(utc_wall_time, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'+00:00'").alias("timestamp"),
        F.col("title").alias("title"),
        F.col("year").alias("year"),
    )
    return F.to_json(event, {"ignoreNullFields": "false"})


def history_rows(events, cutoff: datetime, max_length: int):
    """HISTORIES rows: each user's last `max_length` events strictly before `cutoff`, oldest first.

    Args:
        events: a Spark DataFrame of `histories.EVENT_COLUMNS` (interactions joined with item text).
        cutoff: tz-aware UTC cutoff; becomes `event_timestamp`.
        max_length: events kept per user (most recent).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # (timestamp, item_id, event JSON) orders events totally, so ties cannot reorder a history between runs.
    keyed = events.where(F.col("timestamp") < F.lit(cutoff)).select(
        "user_id", F.struct("timestamp", "item_id", _event_json().alias("json")).alias("event")
    )
    newest_first = Window.partitionBy("user_id").orderBy(F.col("event").desc())
    recent = keyed.withColumn("_rank", F.row_number().over(newest_first)).where(F.col("_rank") <= max_length)
    ordered = recent.groupBy("user_id").agg(F.sort_array(F.collect_list("event")).alias("events"))
    history_json = F.concat(F.lit("["), F.array_join(F.transform("events", lambda e: e["json"]), ","), F.lit("]"))
    return ordered.select(
        "user_id",
        F.lit(cutoff).cast("timestamp").alias("event_timestamp"),
        F.transform("events", lambda e: e["item_id"]).alias("item_ids"),
        history_json.alias("history_json"),
        F.size("events").cast("long").alias("history_length"),
        F.element_at("events", -1)["timestamp"].alias("last_interaction_at"),
        F.substring(F.sha2(history_json, 256), 1, 32).alias("history_hash"),
    )
