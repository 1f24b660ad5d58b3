"""Disagreement-triggered LLM refresh: queue users whose student-predicted profile left their last LLM profile.

The stream never calls an LLM. A touched user whose `profile_drift` (1 - cosine between the student's
predicted profile vector and the last LLM profile's) exceeds the threshold is queued once per snapshot,
most drifted first, at most `budget` per hour of event time; `generate_profiles` reads the queue folder as
its refresh list (`profile.only_users=<data_dir>/stream/profile_refresh_queue`), and so does the planner.
"""

from __future__ import annotations

__all__ = ["to_queue"]


def to_queue(scored, queued, cutoff, threshold: float, budget: int, batch_id: int):
    """The PROFILE_REFRESH_QUEUE rows micro-batch `batch_id` adds.

    Args:
        scored: this micro-batch's `user_student` rows (`user_id`, `event_timestamp`, `profile_drift`).
        queued: the queue so far (earlier micro-batches), or None.
        cutoff: the snapshot's cutoff: a user queued since it is not queued again until the next snapshot.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    drifting = scored.where(
        F.col("profile_drift").isNotNull() & ~F.isnan("profile_drift") & (F.col("profile_drift") > threshold)
    ).select("user_id", F.col("event_timestamp").alias("queued_at"), "profile_drift")
    hour = F.date_trunc("hour", F.col("queued_at"))
    if queued is not None:
        earlier = queued.where(F.col("stream_batch") < batch_id)
        drifting = drifting.join(earlier.where(F.col("queued_at") >= F.lit(cutoff)), "user_id", "left_anti")
        used = earlier.groupBy(hour.alias("_hour")).agg(F.count(F.lit(1)).alias("_used"))
    else:
        used = None
    ranked = drifting.withColumn("_hour", hour).withColumn(
        "_rank", F.row_number().over(Window.partitionBy("_hour").orderBy(F.desc("profile_drift"), "user_id"))
    )
    if used is not None:
        ranked = ranked.join(used, "_hour", "left")
    else:
        ranked = ranked.withColumn("_used", F.lit(0))
    return ranked.where(F.col("_rank") <= F.lit(budget) - F.coalesce(F.col("_used"), F.lit(0))).select(
        "user_id", "queued_at", "profile_drift", F.lit(batch_id).cast("long").alias("stream_batch")
    )
