"""The distilled student in the pipeline: train on a snapshot, score every user.

Training is single-node PyTorch on the driver (the interactions before the cutoff
and the snapshot's profile vectors); scoring is a mapInPandas job that loads the
checkpoint once per executor Python worker.
"""

from __future__ import annotations

import pandas as pd

from profile_features import schemas
from profile_features.config import JobConfig
from profile_features.spark.common import ddl, run_date_for, threads_per_task, write_summary
from profile_features.spark.io import read_table, write_atomic

__all__ = ["checkpoint_dir", "run_train_student", "run_score_student"]


def checkpoint_dir(config: JobConfig, run_date: str) -> str:
    return config.student.checkpoint or config.table_path(f"student/run_date={run_date}")


def run_train_student(spark, config: JobConfig) -> dict:
    """Train the student on interactions before the snapshot's cutoff and its profiles."""
    from pyspark.sql import functions as F

    from student.config import load_student_config
    from student.train import train_from_frames

    run_date = run_date_for(spark, config, "user_profile_embeddings")
    profiles = read_table(spark, config.table_path(f"user_profile_embeddings/run_date={run_date}"))
    cutoff = profiles.select(F.max("event_timestamp").alias("t")).first().t
    interactions = (
        read_table(spark, config.table_path("validated/interactions"))
        .where(F.col("timestamp") < F.lit(cutoff))  # the profiles saw nothing later either
        .select("user_id", "item_id", "timestamp")
        .toPandas()
    )
    vectors = profiles.select("user_id", "profile_embedding").toPandas()
    student_config = load_student_config(config.student.config, list(config.student.overrides))
    out = config.table_path(f"student/run_date={run_date}")
    # Epochs picked on each user's held-out last item, best epoch restored: no fixed epoch count.
    result = train_from_frames(student_config, interactions, vectors, out, validate=True)
    return write_summary(
        config,
        "train_student",
        {
            "job": "train_student",
            "run_date": run_date,
            "cutoff": str(cutoff),
            "interactions": len(interactions),
            **result,
        },
    )


def run_score_student(spark, config: JobConfig) -> dict:
    """Write `user_student` for the snapshot: every user with a history gets a row."""
    run_date = run_date_for(spark, config, "histories")
    histories = read_table(spark, config.table_path(f"histories/run_date={run_date}")).select(
        "user_id", "event_timestamp", "item_ids"
    )
    profiles = read_table(spark, config.table_path(f"user_profile_embeddings/run_date={run_date}")).select(
        "user_id", "profile_embedding"
    )
    users = histories.join(profiles, "user_id", "left")  # a user without a profile still gets a student vector
    path = checkpoint_dir(config, run_date)
    batch_size = config.student.batch_size
    threads = threads_per_task(spark)

    def partition(batches):
        from student.scoring import load_student, score_users

        model = load_student(path, num_threads=threads)  # once per worker process
        for batch in batches:
            scored = score_users(batch, model, batch_size=batch_size)
            scored.insert(1, "event_timestamp", pd.Series(batch["event_timestamp"].to_numpy()))
            yield scored

    scored = users.repartition(spark.sparkContext.defaultParallelism).mapInPandas(
        partition, schema=ddl(schemas.USER_STUDENT)
    )
    output = write_atomic(scored, config.table_path("user_student"), run_date)
    written = read_table(spark, output)
    summary = {
        "job": "score_student",
        "run_date": run_date,
        "checkpoint": path,
        "output": output,
        "users": histories.count(),
        "scored": written.count(),
        "fallbacks": written.where("student_fallback").count(),
        "with_drift": written.where("profile_drift IS NOT NULL AND NOT isnan(profile_drift)").count(),
    }
    return write_summary(config, "score_student", summary)
