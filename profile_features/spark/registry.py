"""Every pipeline stage, declared once: what it runs, what it reads and writes, what it needs, when it runs.

`pipeline.run_snapshots` runs the per-snapshot stages in this order, and each `spark_jobs/<name>.py`
entry file is `run_job(STAGES["<name>"], ...)`, so the demo, the examples and a spark-submit run
the same stage the same way. Stage names are the README's verbs (and the entry files' names).

It lives beside the runners in `spark/` because every stage is a Spark stage and its preflight
(`Needs`) is Spark's; the runners themselves are imported on first use, so an entry file loads
only its own stage's dependencies (torch, sentence-transformers, ...).

`refresh_plan` is not here: it is a planning tool with its own arguments (budget, output file),
not a stage with a snapshot, and the pipeline never runs it. `stream_student` is (STREAM, not per snapshot):
the pipeline never runs it either, but it reads and writes catalogue tables like every stage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from profile_features.catalogue import (
    ENCODERS,
    HISTORIES,
    INTERACTIONS,
    ITEM_SEMANTIC,
    ITEM_STATS,
    ITEM_STUDENT,
    ITEM_TEXT_EMBEDDINGS,
    ITEMS,
    PROFILE_CACHE,
    PROFILE_DEAD_LETTERS,
    PROFILE_REFRESH_QUEUE,
    PROFILE_REFRESH_REJECTS,
    PROFILES,
    REJECTS,
    RUNS,
    STREAM_CHECKPOINT,
    STREAM_EVENTS,
    STREAM_ITEM_REJECTS,
    STREAM_ITEMS,
    STREAM_ITEMS_CHECKPOINT,
    STREAM_REJECTS,
    STUDENT,
    STUDENT_TRAINING,
    TOMBSTONES,
    TRANSFORMS,
    USER_PROFILE_EMBEDDINGS,
    USER_SEMANTIC,
    USER_STATS,
    USER_STUDENT,
    Snapshot,
    Table,
)
from profile_features.config import JobConfig
from profile_features.spark.preflight import Needs

__all__ = ["Stage", "STAGES", "SNAPSHOT_STAGES", "VALIDATE", "STREAM", "run_stage"]


def _always(config: JobConfig) -> bool:
    return True


def _student(config: JobConfig) -> bool:
    return config.student.enabled


def _train_student(config: JobConfig) -> bool:
    """Only without a given checkpoint: `student.checkpoint` scores every snapshot with that one."""
    return config.student.enabled and config.student.checkpoint is None


@dataclass(frozen=True)
class Stage:
    """One stage. `runner` is `"module:function"` (imported on first use) or the function itself;
    a per-snapshot runner is called `runner(spark, config, snapshot)`, any other `runner(spark, config)`,
    and returns a `spark.results` record.

    `upstream` (per-snapshot stages) is the table whose newest partition names the snapshot when the
    stage is run by hand without `history.cutoff`; None cuts a new snapshot at the current time.
    `enabled` says whether the pipeline runs the stage for a config (an entry file runs it regardless).
    """

    name: str
    key: str  # its key among a pipeline snapshot's summaries
    runner: str | Callable
    title: str  # what the pipeline log says it does; formatted with `config`
    reads: tuple[Table, ...]
    writes: tuple[Table, ...]
    needs: Needs
    per_snapshot: bool = True
    upstream: Table | None = None
    enabled: Callable[[JobConfig], bool] = _always

    @property
    def function(self) -> Callable:
        if callable(self.runner):
            return self.runner
        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)

    def heading(self, config: JobConfig) -> str:
        return self.title.format(config=config)

    def run(self, spark, config: JobConfig, snapshot: Snapshot | None = None):
        if not self.per_snapshot:
            return self.function(spark, config)
        if snapshot is None:
            raise ValueError(f"{self.name} runs on a snapshot: pass one (spark.common.resolve_snapshot)")
        return self.function(spark, config, snapshot)


VALIDATE = Stage(
    name="validate_inputs",
    key="validate",
    runner="profile_features.spark.stages:run_validate",
    title="validating inputs",
    reads=(TOMBSTONES,),  # and the raw inputs (`config.inputs`, outside data_dir); tombstones: forgotten users
    writes=(ITEMS, INTERACTIONS, REJECTS, RUNS),
    needs=Needs(inputs=True),
    per_snapshot=False,
)

SNAPSHOT_STAGES: tuple[Stage, ...] = (
    Stage(
        name="build_histories",
        key="histories",
        runner="profile_features.spark.stages:run_histories",
        title="histories",
        reads=(INTERACTIONS, ITEMS),
        writes=(HISTORIES, USER_STATS, ITEM_STATS, RUNS),
        needs=Needs(),
        upstream=None,
    ),
    Stage(
        name="generate_profiles",
        key="profiles",
        runner="profile_features.spark.profile_job:run_profiles",
        title="profiles ({config.profile.generator})",
        reads=(HISTORIES, ITEMS, PROFILE_CACHE, PROFILES),
        writes=(PROFILES, PROFILE_CACHE, PROFILE_DEAD_LETTERS, PROFILE_REFRESH_REJECTS, RUNS),
        needs=Needs(profiles=True),
        upstream=HISTORIES,
    ),
    Stage(
        name="embed_texts",
        key="embeddings",
        runner="profile_features.spark.stages:run_embeddings",
        title="embeddings (profiles and item texts)",
        reads=(PROFILES, ITEMS, ENCODERS),
        writes=(USER_PROFILE_EMBEDDINGS, ITEM_TEXT_EMBEDDINGS, ENCODERS, RUNS),
        needs=Needs(embed=True),
        upstream=PROFILES,
    ),
    Stage(
        name="semantic_columns",
        key="semantic",
        runner="profile_features.spark.semantic_job:run_semantic_columns",
        title="semantic columns (PCA, clusters, item semantic IDs)",
        reads=(USER_PROFILE_EMBEDDINGS, ITEM_TEXT_EMBEDDINGS, TRANSFORMS),
        writes=(USER_SEMANTIC, ITEM_SEMANTIC, TRANSFORMS, RUNS),
        needs=Needs(semantic=True),
        upstream=USER_PROFILE_EMBEDDINGS,
    ),
    Stage(
        name="train_student",
        key="train_student",
        runner="profile_features.spark.student_job:run_train_student",
        title="training the distilled student",
        reads=(USER_PROFILE_EMBEDDINGS, INTERACTIONS, ITEM_TEXT_EMBEDDINGS, ITEM_SEMANTIC),
        writes=(STUDENT, STUDENT_TRAINING, RUNS),
        needs=Needs(torch=True),
        upstream=USER_PROFILE_EMBEDDINGS,
        enabled=_train_student,
    ),
    Stage(
        name="score_student",
        key="score_student",
        runner="profile_features.spark.student_job:run_score_student",
        title="scoring users with the student",
        reads=(HISTORIES, USER_PROFILE_EMBEDDINGS, ITEM_TEXT_EMBEDDINGS, ITEM_SEMANTIC, STUDENT),
        writes=(USER_STUDENT, ITEM_STUDENT, RUNS),
        needs=Needs(torch=True),
        upstream=HISTORIES,
        enabled=_student,
    ),
)

# The streaming student refresh: runs until stopped, between snapshots, on the newest one's histories and student.
STREAM = Stage(
    name="stream_student",
    key="stream",
    runner="profile_features.streaming.job:run_stream",
    title="streaming student refresh",
    reads=(
        HISTORIES,
        USER_PROFILE_EMBEDDINGS,
        STUDENT,
        ITEMS,
        TOMBSTONES,
        STREAM_EVENTS,
        PROFILE_REFRESH_QUEUE,
        STREAM_ITEMS,
        ITEM_TEXT_EMBEDDINGS,
        ITEM_SEMANTIC,
        TRANSFORMS,
        ENCODERS,
    ),
    writes=(
        STREAM_EVENTS,
        STREAM_REJECTS,
        USER_STUDENT,
        PROFILE_REFRESH_QUEUE,
        STREAM_CHECKPOINT,
        STREAM_ITEMS,
        STREAM_ITEM_REJECTS,
        ITEM_TEXT_EMBEDDINGS,
        ITEM_SEMANTIC,
        ITEM_STUDENT,
        STREAM_ITEMS_CHECKPOINT,
        RUNS,
    ),
    needs=Needs(torch=True),
    per_snapshot=False,
)

STAGES: dict[str, Stage] = {stage.name: stage for stage in (VALIDATE, *SNAPSHOT_STAGES, STREAM)}


def run_stage(spark, config: JobConfig, name: str, snapshot: Snapshot | None = None):
    """Run the stage `name` as its entry file does: on `snapshot`, or (a per-snapshot stage run by hand) the one
    `spark.common.resolve_snapshot` decides from the config (`history.cutoff`, else the upstream's newest)."""
    stage = STAGES[name]
    if stage.per_snapshot and snapshot is None:
        from profile_features.spark.common import resolve_snapshot

        snapshot = resolve_snapshot(spark, config, stage.upstream)
    return stage.run(spark, config, snapshot)
