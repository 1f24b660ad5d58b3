"""`refresh-plan` in Spark: the joins per user run on the executors, the tiers and scores are
`freshness.refresh_plan.score_candidates` over pandas batches, and only the selected users
(at most the budget) are collected. Driver memory depends on the budget, not on the users."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from profile_features.catalogue import HISTORIES, PROFILES, USER_STUDENT, DataDir, Table
from profile_features.freshness.refresh_plan import (
    JOINED_COLUMNS,
    PLAN_COLUMNS,
    PLAN_ORDER,
    TIERS,
    budget_size,
    score_candidates,
)
from profile_features.freshness.runs import RunNotFound

__all__ = ["refresh_plan", "build_refresh_plan", "SCORED_DDL"]

SCORED_DDL = (
    "user_id string, reason string, tier bigint, score double, profile_drift double, history_changed boolean, "
    "interactions_added bigint, added_exact boolean, history_length bigint, history_hash string, "
    "profile_history_hash string, profile_generator string, _added bigint"
)
SCORED_COLUMNS = [c.strip().split()[0] for c in SCORED_DDL.split(",")]


def _newest(spark, data_dir, table: Table, run_date: str, columns: list[str]):
    """(the newest run of `table` at or before `run_date`, its `columns`) or (None, None)."""
    data = DataDir(str(data_dir))
    found = data.newest_run_date(table, run_date)
    return (found, spark.read.parquet(data.partition(table, found)).select(*columns)) if found else (None, None)


def _joined(spark, data_dir, run_date: str, runs: list[str]):
    from pyspark.sql import functions as F

    data = DataDir(str(data_dir))
    frame = (
        spark.read.parquet(data.partition(HISTORIES, run_date))
        .select("user_id", "history_hash", "history_length", "history_json")
        .dropDuplicates(["user_id"])
    )
    sources = {HISTORIES.name: run_date}
    profile_columns = ["user_id", "history_hash", "history_length", "generator"]
    found, profiles = _newest(spark, data_dir, PROFILES, run_date, profile_columns)
    sources[PROFILES.name] = found
    if profiles is None:
        frame = frame.withColumns(
            {
                "profile_history_hash": F.lit(None).cast("string"),
                "profile_history_length": F.lit(None).cast("bigint"),
                "profile_generator": F.lit(None).cast("string"),
            }
        )
    else:
        profiles = profiles.dropDuplicates(["user_id"]).select(
            "user_id",
            F.col("history_hash").alias("profile_history_hash"),
            F.col("history_length").cast("bigint").alias("profile_history_length"),
            F.col("generator").alias("profile_generator"),
        )
        frame = frame.join(profiles, "user_id", "left")
    found, student = _newest(spark, data_dir, USER_STUDENT, run_date, ["user_id", "profile_drift"])
    sources[USER_STUDENT.name] = found
    if student is None:
        frame = frame.withColumn("profile_drift", F.lit(None).cast("double"))
    else:
        frame = frame.join(student.dropDuplicates(["user_id"]), "user_id", "left")
    earlier = [data.partition(HISTORIES, r) for r in runs if r < run_date]
    if earlier:
        seen = (
            spark.read.parquet(*earlier)
            .select(
                "user_id",
                F.col("history_hash").alias("profile_history_hash"),
                F.col("last_interaction_at").alias("profile_last_interaction_at"),
            )
            .dropDuplicates(["user_id", "profile_history_hash"])
        )
        frame = frame.join(seen, ["user_id", "profile_history_hash"], "left")
    else:
        frame = frame.withColumn("profile_last_interaction_at", F.lit(None).cast("timestamp"))
    return frame.select(*JOINED_COLUMNS), sources


def refresh_plan(
    spark,
    data_dir: str | Path,
    budget: int | None = None,
    fraction: float | None = None,
    run_date: str | None = None,
    min_drift: float = 0.0,
) -> tuple[pd.DataFrame, dict]:
    """The selected users (PLAN_COLUMNS, rank 1 first) and a summary; see `build_refresh_plan`."""
    from pyspark.sql import functions as F

    data = DataDir(str(data_dir))
    runs = data.run_dates(HISTORIES)
    if not runs:
        raise RunNotFound(f"{data.root(HISTORIES)}: no histories runs (run build_histories first)")
    run_date = run_date or runs[-1]
    if run_date not in runs:
        raise RunNotFound(f"{data.partition(HISTORIES, run_date)}: no such run (runs there: {runs})")
    joined, sources = _joined(spark, data_dir, run_date, runs)
    joined = joined.persist()  # counted, then scored: the joins run once
    scored = joined.mapInPandas(
        lambda batches: (score_candidates(b, min_drift) for b in batches), schema=SCORED_DDL
    ).persist()
    try:
        users = joined.count()
        counts = {r["reason"]: r["count"] for r in scored.groupBy("reason").count().collect()}
        size = budget_size(users, budget, fraction)
        columns, ascending = PLAN_ORDER
        order = [F.col(c).asc() if up else F.col(c).desc() for c, up in zip(columns, ascending)]
        selected = scored.orderBy(*order).limit(size).toPandas() if size else pd.DataFrame(columns=SCORED_COLUMNS)
    finally:
        scored.unpersist()
        joined.unpersist()
    selected = selected.sort_values(columns, ascending=ascending, kind="stable").reset_index(drop=True)
    selected["rank"] = range(1, len(selected) + 1)
    selected = selected[PLAN_COLUMNS]
    summary = {
        "runs": sources,
        "users_with_history": int(users),
        "budget": size,
        "candidates": {t: int(counts.get(t, 0)) for t in TIERS},
        "selected": {t: int((selected["reason"] == t).sum()) for t in TIERS},
        "selected_total": len(selected),
    }
    return selected, summary


def build_refresh_plan(
    data_dir: str | Path,
    budget: int | None = None,
    fraction: float | None = None,
    run_date: str | None = None,
    min_drift: float = 0.0,
    spark=None,
) -> tuple[pd.DataFrame, dict]:
    """Plan the refresh of the histories run `run_date` (default: the newest) from `data_dir`, in Spark.

    Joins that histories run with the newest profiles and user_student runs at or before it and
    with earlier histories runs (three columns, to count unseen interactions); only the selected
    users (at most the budget) reach the driver. `spark`: a session (default: get or create one,
    local outside spark-submit).

    Returns:
        (the selected users, a summary with the runs read and counts per reason).
    """
    if spark is None:
        from profile_features.config import SparkConfig
        from profile_features.spark.session import build_spark

        spark = build_spark(SparkConfig(app_name="profile-features refresh-plan"))
    return refresh_plan(spark, data_dir, budget, fraction, run_date, min_drift)
