"""The distilled student in the pipeline: train on a snapshot, score every user.

Training is single-node PyTorch on the driver that streams its users from Parquet:
Spark writes one row per user (the items before the cutoff in time order, and the
snapshot's profile vector) and the trainer reads it a chunk at a time, so the driver
holds the model, the item index and one chunk, never every user. Scoring is a
mapInPandas job that loads the checkpoint once per executor Python worker.
"""

from __future__ import annotations

import pandas as pd

from profile_features import schemas
from profile_features.catalogue import (
    HISTORIES,
    INTERACTIONS,
    ITEM_SEMANTIC,
    ITEM_STUDENT,
    ITEM_TEXT_EMBEDDINGS,
    STUDENT,
    STUDENT_TRAINING,
    USER_PROFILE_EMBEDDINGS,
    USER_STUDENT,
    DataDir,
    Snapshot,
    run_dates_under,
)
from profile_features.config import JobConfig
from profile_features.item_content import read_item_content
from profile_features.spark.common import ddl, threads_per_task, write_summary
from profile_features.spark.io import read_table, write_atomic
from profile_features.spark.results import StudentScoreResult, StudentTrainResult

__all__ = [
    "checkpoint_dir",
    "training_users",
    "write_training_users",
    "run_train_student",
    "run_score_student",
]


def checkpoint_dir(config: JobConfig, snapshot: Snapshot) -> str:
    """The checkpoint that scores the snapshot: `student.checkpoint` if given, else the one trained on it."""
    return config.student.checkpoint or snapshot.path(STUDENT)


USERS_PER_FILE = 4096  # one training chunk; the file count grows with the users, each file stays this size


def training_users(interactions, profiles):
    """One row per user: `item_ids` before the cutoff, oldest -> newest (ties by item id), their
    `item_times` (epoch microseconds, aligned: the student's guard validates on a cutoff in time),
    and the profile vector when the user has one."""
    from pyspark.sql import functions as F

    histories = interactions.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("timestamp", "item_id"))).alias("events")
    )
    return histories.select(
        "user_id",
        F.col("events.item_id").alias("item_ids"),
        F.transform("events", lambda e: F.unix_micros(e["timestamp"])).alias("item_times"),
    ).join(profiles.select("user_id", "profile_embedding"), "user_id", "left")


def write_training_users(users, path: str) -> int:
    """Write `users` as hash buckets of ~USERS_PER_FILE users, each sorted by user id; returns the user count.

    The trainer's chunks are these files, so the layout is a function of the user ids alone: the same
    data gives the same files, hence the same checkpoint, on local[2] and on a cluster of any width.
    """
    import math

    count = users.count()
    buckets = max(1, math.ceil(count / USERS_PER_FILE))
    users.repartition(buckets, "user_id").sortWithinPartitions("user_id").write.mode("overwrite").parquet(path)
    return count


def _catalogue(spark, snapshot: Snapshot):
    """The snapshot's items with what the student may read of them: `item_id`, `event_timestamp`,
    `item_text_embedding` and, where the semantic job wrote them, `item_sid_0..L-1`."""
    from profile_features import storage

    catalogue = read_table(spark, snapshot.path(ITEM_TEXT_EMBEDDINGS)).select(
        "item_id", "event_timestamp", "item_text_embedding"
    )
    semantic_path = snapshot.path(ITEM_SEMANTIC)
    if not storage.exists(semantic_path):
        return catalogue
    semantic = read_table(spark, semantic_path)
    levels = sorted(c for c in semantic.columns if c.startswith("item_sid_") and c[9:].isdigit())
    return catalogue.join(semantic.select("item_id", *levels), "item_id", "left") if levels else catalogue


def run_train_student(spark, config: JobConfig, snapshot: Snapshot) -> StudentTrainResult:
    """Train the student on interactions before the snapshot's cutoff and its profiles."""
    from pyspark.sql import functions as F

    from profile_features import storage
    from profile_features.student.checkpoint import CURRENT_FILE
    from profile_features.student.config import load_student_config
    from profile_features.student.train import train_from_parquet

    run_date = snapshot.run_date
    profiles = read_table(spark, snapshot.path(USER_PROFILE_EMBEDDINGS))
    cutoff = profiles.select(F.max("event_timestamp").alias("t")).first().t
    interactions = (
        read_table(spark, snapshot.root(INTERACTIONS))
        .where(F.col("timestamp") < F.lit(cutoff))  # the profiles saw nothing later either
        .select("user_id", "item_id", "timestamp")
    )
    users = snapshot.path(STUDENT_TRAINING)  # scratch, removed after
    write_training_users(training_users(interactions, profiles), users)
    # The item vocabulary is the catalogue the model embeds: it lives on the driver with the model.
    item_ids = [row.item_id for row in interactions.select("item_id").distinct().collect()]
    dims = profiles.select(F.size("profile_embedding").alias("d")).where("d > 0").first()
    student_config = load_student_config(config.student.config, list(config.student.overrides))
    content = read_item_content(config.data_dir, run_date, student_config.content_views)
    out = snapshot.path(STUDENT)
    # The deployment guard (student/guard.py): epochs and the variant that ships are picked on the items
    # after a validation cutoff inside the training period; the decision is in this job's summary.
    earlier = [d for d in run_dates_under(DataDir(config.data_dir).root(STUDENT)) if d < run_date]
    previous = Snapshot(config.data_dir, earlier[-1]).path(STUDENT) if earlier else None
    if previous and not storage.exists(storage.join(previous, CURRENT_FILE)):
        previous = None  # a folder without a committed checkpoint (a killed run): nothing to align to
    result = train_from_parquet(
        student_config,
        users,
        item_ids,
        dims.d if dims else 0,
        out,
        validate=True,
        content=content,
        align_to=previous,  # served vectors stay in the previous snapshot's basis (student/alignment.py)
    )
    storage.delete(users)
    trained = StudentTrainResult(run_date, str(cutoff), interactions.count(), result)
    write_summary(config, "train_student", trained.summary())
    return trained


def _score_items(spark, snapshot: Snapshot, path: str, threads: int) -> tuple[str, dict]:
    """Write `item_student` for the snapshot: the student's vector and bias for every catalogue item."""
    catalogue = _catalogue(spark, snapshot)

    def partition(batches):
        from profile_features.student.scoring import load_student, score_items

        model = load_student(path, num_threads=threads)  # once per worker process
        for batch in batches:
            scored = score_items(batch, model)
            scored.insert(1, "event_timestamp", pd.Series(batch["event_timestamp"].to_numpy()))
            yield scored

    scored = catalogue.mapInPandas(partition, schema=ddl(schemas.ITEM_STUDENT))
    output = write_atomic(scored, snapshot.path(ITEM_STUDENT))
    written = read_table(spark, output)
    return output, {
        "items": written.count(),
        "represented": written.where("student_item_embedding IS NOT NULL").count(),
        "seen_in_training": written.where("student_item_seen").count(),
    }


def run_score_student(spark, config: JobConfig, snapshot: Snapshot) -> StudentScoreResult:
    """Write `user_student` (every user with a history) and `item_student` (every catalogue item the
    student can represent) for the snapshot."""
    histories = read_table(spark, snapshot.path(HISTORIES)).select("user_id", "event_timestamp", "item_ids")
    profiles = read_table(spark, snapshot.path(USER_PROFILE_EMBEDDINGS)).select("user_id", "profile_embedding")
    users = histories.join(profiles, "user_id", "left")  # a user without a profile still gets a student vector
    path = checkpoint_dir(config, snapshot)
    batch_size = config.student.batch_size
    threads = threads_per_task(spark)

    def partition(batches):
        from profile_features.student.scoring import load_student, score_users

        model = load_student(path, num_threads=threads)  # once per worker process
        for batch in batches:
            scored = score_users(batch, model, batch_size=batch_size)
            scored.insert(1, "event_timestamp", pd.Series(batch["event_timestamp"].to_numpy()))
            yield scored

    scored = users.repartition(spark.sparkContext.defaultParallelism).mapInPandas(
        partition, schema=ddl(schemas.USER_STUDENT)
    )
    output = write_atomic(scored, snapshot.path(USER_STUDENT))
    written = read_table(spark, output)
    user_counts = dict(
        users=histories.count(),
        scored=written.count(),
        fallbacks=written.where("student_fallback").count(),
        variants=tuple(sorted(r.student_variant for r in written.select("student_variant").distinct().collect())),
        with_drift=written.where("profile_drift IS NOT NULL AND NOT isnan(profile_drift)").count(),
    )
    item_output, item_scores = _score_items(spark, snapshot, path, threads)
    result = StudentScoreResult(
        snapshot.run_date, path, output, **user_counts, item_output=item_output, item_scores=item_scores
    )
    write_summary(config, "score_student", result.summary())
    return result
