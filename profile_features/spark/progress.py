"""Progress of a Spark stage's actions, in tasks, from the driver's status tracker.

The actions inside the context run under their own job group; a driver thread adds up completed and
total tasks of that group's jobs. Task granularity is what Spark knows without help from the
workers, and it holds on a cluster as in local mode (Spark's own console bar is off: it interleaves
with logs and counts every job of the session).
"""

from __future__ import annotations

import logging
import uuid

from profile_features.progress import PolledProgress

__all__ = ["SparkTaskProgress"]


class SparkTaskProgress(PolledProgress):
    """Context manager around a stage's Spark actions: `with SparkTaskProgress(spark, "embeddings"): ...`."""

    logger = logging.getLogger(__name__)

    def __init__(self, spark, name: str, interval: float = 2.0, log_every: float = 30.0):
        super().__init__(name, None, "task", "tasks", interval, log_every)
        self.context = spark.sparkContext
        self.group = f"{name}-{uuid.uuid4().hex[:8]}"
        self._previous: tuple[str | None, str | None] = (None, None)

    def poll(self) -> None:
        tracker = self.context.statusTracker()
        done = total = 0
        for job_id in tracker.getJobIdsForGroup(self.group):
            job = tracker.getJobInfo(job_id)
            for stage_id in job.stageIds if job is not None else ():
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    done, total = done + stage.numCompletedTasks, total + stage.numTasks
        self.done, self.total = done, total or None

    def __enter__(self):
        get = self.context.getLocalProperty
        self._previous = (get("spark.jobGroup.id"), get("spark.job.description"))
        self.context.setJobGroup(self.group, self.name, interruptOnCancel=False)
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        group, description = self._previous
        self.context.setLocalProperty("spark.jobGroup.id", group)
        self.context.setLocalProperty("spark.job.description", description)
