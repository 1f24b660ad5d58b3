"""User and item stats at a cutoff as native Spark aggregations (no Python workers, one shuffle each)."""

from __future__ import annotations

from datetime import datetime

__all__ = ["user_stats", "item_stats"]


def _before(events, cutoff: datetime):
    from pyspark.sql import functions as F

    return events.where(F.col("timestamp") < F.lit(cutoff))


def _mean_rating():
    from pyspark.sql import functions as F

    return F.avg(F.when(~F.isnan("rating"), F.col("rating")))  # missing ratings (null or NaN) are skipped


def user_stats(events, cutoff: datetime):
    """USER_STATS: per user with events before `cutoff`, their count, mean rating and the days between
    the first event and the cutoff."""
    from pyspark.sql import functions as F

    at = F.lit(cutoff).cast("timestamp")
    return (
        _before(events, cutoff)
        .groupBy("user_id")
        .agg(
            F.count(F.lit(1)).alias("user_interaction_count"),
            _mean_rating().alias("user_mean_rating"),
            F.min("timestamp").alias("first"),
        )
        .select(
            "user_id",
            at.alias("event_timestamp"),
            "user_interaction_count",
            "user_mean_rating",
            ((at.cast("double") - F.col("first").cast("double")) / 86400.0).alias("user_days_active"),
        )
    )


def item_stats(events, cutoff: datetime):
    """ITEM_STATS: per item with events before `cutoff`, their count and mean rating (popularity baseline)."""
    from pyspark.sql import functions as F

    return (
        _before(events, cutoff)
        .groupBy("item_id")
        .agg(F.count(F.lit(1)).alias("item_interaction_count"), _mean_rating().alias("item_mean_rating"))
        .select(
            "item_id",
            F.lit(cutoff).cast("timestamp").alias("event_timestamp"),
            "item_interaction_count",
            "item_mean_rating",
        )
    )
