"""The profile stage in Spark: histories of a snapshot -> profiles, incrementally.

  1. Read the snapshot's histories and the cache entries of this generator key
     (history_hash, generator, model, prompt_version).
  2. Generate only the distinct histories the cache lacks (or that fell back last time,
     with `cache.retry_fallbacks`). Workers checkpoint cache entries and dead letters
     every `cache.checkpoint_every` users, so a killed run keeps what it finished.
  3. Join every history to its one cache entry and write PROFILES atomically: each user
     exactly once, or the job fails naming how many are missing.
  4. Compact the cache and write the run summary (users, calls, cache hits, retries,
     fallbacks, rejects, tokens in/out).

With the cache off (the rule_based default), the same path runs against a scratch
store (`<data_dir>/_staging/profile-run-<id>`) that is removed afterwards.

With `profile.only_users` (a refresh list) only the listed users go through steps 1-3;
every other user keeps a profile without an LLM call, first found of: the cache entry of
their current history, their row in the newest earlier `profiles` run (old text and
history hash, this snapshot's timestamp), or a rule-based stand-in for users who never
had one (labelled `rule_based_fallback` under an LLM generator, so the next refresh plan
ranks them). Listed ids that are unknown, repeated or empty are written to
`<data_dir>/profile_refresh_rejects` with the reason. The output still has every user once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from profile_features import schemas
from profile_features.catalogue import (
    HISTORIES,
    ITEMS,
    PROFILE_CACHE,
    PROFILE_DEAD_LETTERS,
    PROFILE_REFRESH_REJECTS,
    PROFILES,
    RUN_DATE,
    STAGING,
    DataDir,
    Snapshot,
)
from profile_features.config import JobConfig
from profile_features.freshness.refresh_plan import check_refresh_list
from profile_features.profiles.base import FALLBACK_GENERATOR
from profile_features.profiles.progress import GenerationProgress
from profile_features.profiles.rule_based import RuleBasedProfileWriter
from profile_features.profiles.sanitize import SanitizedGenerator
from profile_features.profiles.stage import generate_profiles, generator_key, make_generator
from profile_features.profiles.store import CheckpointWriter, generate_checkpointed, list_parts, remove_tree, store_fs
from profile_features.profiles.tables import KEY_COLUMNS, RUN_STATS
from profile_features.profiles.tables import PROFILE_CACHE as CACHE_SCHEMA
from profile_features.profiles.terms import common_threshold, item_term_rows
from profile_features.spark.common import ddl, resolve_snapshot, threads_per_task, write_summary
from profile_features.spark.io import path_exists, read_table, spark_schema, write_atomic
from profile_features.spark.results import ProfilesResult

__all__ = [
    "run_profiles",
    "plan_generation",
    "GenerationPlan",
    "read_cache",
    "catalogue_common_terms",
    "ProfileRunFailed",
]


class ProfileRunFailed(RuntimeError):
    """Raised after the summary is written, when the run must not count as a success."""


def read_cache(spark, cache_path: str, key: tuple[str, str, str] | None = None, ok_only: bool = False):
    """One entry per cache key (of `key` only, if given): an `ok` entry over a fallback,
    then the newest."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    sources = [p for p in (f"{cache_path}/parts", f"{cache_path}/compacted") if path_exists(spark, p)]
    if not sources:
        return spark.createDataFrame([], spark_schema(CACHE_SCHEMA))
    frame = spark.read.schema(spark_schema(CACHE_SCHEMA)).parquet(*sources)
    if key is not None:
        generator, model, prompt_version = key
        frame = frame.where(
            (F.col("key_generator") == generator)
            & (F.col("key_model") == model)
            & (F.col("key_prompt_version") == prompt_version)
        )
    if ok_only:
        frame = frame.where(F.col("status") == "ok")
    order = Window.partitionBy(*KEY_COLUMNS).orderBy((F.col("status") == "ok").desc(), F.col("created_at").desc())
    return frame.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def catalogue_common_terms(spark, config: JobConfig) -> frozenset[str]:
    """Words in more than `profile.common_term_share` of the validated catalogue's items.

    Counted in Spark; only the common terms reach the driver, a set bounded by
    tokens-per-item / share whatever the catalogue's size.
    """
    from pyspark.sql import functions as F

    items = read_table(spark, DataDir(config.data_dir).root(ITEMS)).select("title", "description")
    total = items.count()

    def terms(batches):
        for batch in batches:
            yield item_term_rows(batch)

    threshold = common_threshold(total, config.profile.common_term_share)
    counts = items.mapInPandas(terms, schema="term string").groupBy("term").count()
    return frozenset(row.term for row in counts.where(F.col("count") > F.lit(threshold)).collect())


def _sum_stats(rows) -> dict:
    totals = Counter()
    counted = {"reasons_json": Counter(), "models_json": Counter()}
    for row in rows:
        for name in RUN_STATS.names:
            if name in counted:
                counted[name].update(json.loads(row[name]))
            elif name != "seconds":
                totals[name] += row[name]
    return {
        **{n: int(totals[n]) for n in RUN_STATS.names if n not in (*counted, "seconds")},
        "reasons": dict(sorted(counted["reasons_json"].items())),
        "reported_models": dict(sorted(counted["models_json"].items())),
    }


def _compact(spark, cache_path: str, parts: list[str]) -> None:
    """Rewrite the cache as one entry per key, then drop the checkpoint files it read."""
    if not parts:
        return
    write_atomic(
        read_cache(spark, cache_path).coalesce(max(1, spark.sparkContext.defaultParallelism)), f"{cache_path}/compacted"
    )
    filesystem, _ = store_fs(cache_path)
    for part in parts:  # only files that existed before the compacted copy was read
        filesystem.delete_file(part)


def _refresh_subset(spark, config: JobConfig, histories, snapshot: Snapshot, write_rejects: bool = True) -> dict:
    """Split the snapshot's histories by the refresh list; write the list's unusable rows aside
    (unless `write_rejects` is False: a dry run changes nothing)."""
    import pandas as pd

    path = config.profile.only_users
    if not path_exists(spark, path):
        raise FileNotFoundError(f"{path}: profile.only_users refresh list not found")
    reader = spark.read.option("header", True).csv if path.lower().endswith(".csv") else spark.read.parquet
    listed = reader(path).toPandas()  # budget-sized: fine on the driver
    usable, rejects = check_refresh_list(listed, path)
    wanted = spark.createDataFrame(usable, "user_id string")
    unknown = wanted.join(histories.select("user_id"), "user_id", "left_anti").toPandas()["user_id"]
    rejects = pd.concat(
        [
            rejects,
            pd.DataFrame(
                {
                    "table": "refresh_list",
                    "source_file": path,
                    "reason": "unknown_user",
                    "record": [json.dumps({"user_id": u}) for u in unknown],
                }
            ),
        ],
        ignore_index=True,
    )
    rows = [tuple(r) for r in rejects[schemas.REJECTS.names].itertuples(index=False)]
    # Always written, so a re-run of the snapshot replaces the previous run's rejects.
    rejects_path = None
    if write_rejects:
        rejects_path = write_atomic(
            spark.createDataFrame(rows, spark_schema(schemas.REJECTS)).coalesce(1),
            snapshot.path(PROFILE_REFRESH_REJECTS),
        )
    return {
        "targets": histories.join(wanted, "user_id", "left_semi"),
        "rest": histories.join(wanted, "user_id", "left_anti"),
        "summary": {
            "list": path,
            "listed_rows": len(listed),
            "listed_users": len(usable) - len(unknown),
            "rejected": {str(k): int(v) for k, v in rejects["reason"].value_counts().sort_index().items()},
            "rejects_path": rejects_path,
        },
    }


def _kept_profiles(spark, config: JobConfig, rest, entries, snapshot: Snapshot, common_terms: frozenset[str]):
    """Profiles of the users not on the refresh list, with no LLM call: (frame, counts by source)."""
    from pyspark.sql import functions as F

    columns = schemas.PROFILES.names
    rest = rest.select("user_id", "event_timestamp", "history_json", "history_hash", "history_length")
    cached = rest.join(entries.drop("status"), "history_hash", "inner").select(*columns)
    left = rest.join(entries.select("history_hash"), "history_hash", "left_anti")
    parts, counts = [cached], {"from_cache": cached.count()}
    profiles_path = snapshot.root(PROFILES)
    previous_run = None
    if path_exists(spark, profiles_path):
        previous_run = (
            read_table(spark, profiles_path)
            .where(F.col(RUN_DATE).cast("string") < snapshot.run_date)
            .select(F.max(RUN_DATE).cast("string").alias("d"))
            .first()
            .d
        )
    counts["previous"] = 0
    if previous_run is not None:
        # Old text and old history hash (so the next plan sees the change), this snapshot's timestamp.
        earlier = read_table(spark, snapshot.partition(PROFILES, previous_run)).drop("event_timestamp")
        kept = left.select("user_id", "event_timestamp").join(earlier, "user_id", "inner").select(*columns)
        left = left.join(earlier.select("user_id"), "user_id", "left_anti")
        parts.append(kept)
        counts["previous"] = kept.count()
    max_titles, relabel, sanitize = config.profile.max_titles, config.profile.is_llm, config.profile.sanitize

    def stand_in(batches):
        # Stand-ins pass the same sanitising step and output gate as every other writer.
        writer = SanitizedGenerator(RuleBasedProfileWriter(max_titles=max_titles, common_terms=common_terms), sanitize)
        for batch in batches:
            profiles = generate_profiles(batch, writer)
            if relabel:
                profiles["generator"] = FALLBACK_GENERATOR
            yield profiles

    counts["stand_in"] = left.count()
    parts.append(left.mapInPandas(stand_in, schema=ddl(schemas.PROFILES)))
    frame = parts[0]
    for part in parts[1:]:
        frame = frame.unionByName(part)
    return frame, {**counts, "previous_run": previous_run}


@dataclass
class GenerationPlan:
    """What a profile run will do: the snapshot's histories, the users it may generate for and the
    distinct histories the cache lacks (`todo`, persisted), with their counts."""

    snapshot: Snapshot
    run_id: str
    key: tuple[str, str, str]
    common_terms: frozenset[str]
    cache_path: str
    histories: object  # Spark DataFrames, persisted
    targets: object
    todo: object
    subset: dict | None
    users: int
    target_users: int
    to_generate: int
    users_to_generate: int

    @property
    def run_date(self) -> str:
        return self.snapshot.run_date


def plan_generation(
    spark, config: JobConfig, snapshot: Snapshot | None = None, dry_run: bool = False
) -> GenerationPlan:
    """Read the snapshot (None: the newest histories run) and the cache, and count what is left to
    generate (nothing is written when `dry_run`)."""
    snapshot = snapshot or resolve_snapshot(spark, config, HISTORIES)
    histories = read_table(spark, snapshot.path(HISTORIES))
    profile_config = config.profile
    common_terms = catalogue_common_terms(spark, config)
    key = generator_key(profile_config, common_terms)
    run_id = uuid.uuid4().hex[:12]
    cache_path = (
        (profile_config.cache.path or snapshot.root(PROFILE_CACHE))
        if profile_config.cache_enabled
        else f"{snapshot.root(STAGING)}/profile-run-{run_id}"  # scratch store, removed at the end of the run
    )
    histories = histories.persist()
    users = histories.count()
    subset = (
        _refresh_subset(spark, config, histories, snapshot, write_rejects=not dry_run)
        if profile_config.only_users
        else None
    )
    targets = subset["targets"] if subset else histories  # the users this run may generate for
    target_users = targets.count() if subset else users
    usable = read_cache(spark, cache_path, key, ok_only=profile_config.cache.retry_fallbacks).select("history_hash")
    todo = targets.join(usable, "history_hash", "left_anti").dropDuplicates(["history_hash"]).persist()
    to_generate = todo.count()
    users_to_generate = targets.join(todo.select("history_hash"), "history_hash", "left_semi").count()
    return GenerationPlan(
        snapshot=snapshot,
        run_id=run_id,
        key=key,
        common_terms=common_terms,
        cache_path=cache_path,
        histories=histories,
        targets=targets,
        todo=todo,
        subset=subset,
        users=users,
        target_users=target_users,
        to_generate=to_generate,
        users_to_generate=users_to_generate,
    )


def run_profiles(spark, config: JobConfig, snapshot: Snapshot) -> ProfilesResult:
    """Write one profile per history of the snapshot with the configured generator."""
    from pyspark.sql import functions as F

    started = time.monotonic()
    profile_config = config.profile
    plan = plan_generation(spark, config, snapshot)
    snapshot, run_date, run_id, key, common_terms = (
        plan.snapshot,
        plan.run_date,
        plan.run_id,
        plan.key,
        plan.common_terms,
    )
    cache_path, histories, targets, todo, subset = plan.cache_path, plan.histories, plan.targets, plan.todo, plan.subset
    users, target_users, to_generate = plan.users, plan.target_users, plan.to_generate
    users_to_generate = plan.users_to_generate
    use_cache = profile_config.cache_enabled
    dead_path = profile_config.dead_letter_path or snapshot.root(PROFILE_DEAD_LETTERS)

    totals = _sum_stats([])
    generation_s = 0.0
    if to_generate:
        partitions = min(profile_config.partitions or spark.sparkContext.defaultParallelism, to_generate)
        threads = threads_per_task(spark, profile_config.transformers.threads, partitions)
        every = profile_config.cache.checkpoint_every

        def partition(batches):
            # On the worker; models cached per process.
            generator = make_generator(profile_config, threads=threads, common_terms=common_terms)
            writer = CheckpointWriter(cache_path, dead_path, run_id, run_date)
            yield from generate_checkpointed(batches, generator, key, writer, every)

        t0 = time.monotonic()
        with GenerationProgress(cache_path, run_id, to_generate):
            rows = todo.repartition(partitions).mapInPandas(partition, schema=ddl(RUN_STATS)).collect()
        generation_s = time.monotonic() - t0
        totals = _sum_stats(rows)
    todo.unpersist()

    entries = read_cache(spark, cache_path, key).select(
        "history_hash", "profile_text", "generator", "model", "prompt_version", "status"
    )
    joined = targets.join(entries, "history_hash", "left")
    missing = joined.where(F.col("profile_text").isNull()).count()
    if missing:
        raise ProfileRunFailed(f"{missing} of {target_users} users got no profile (cache {cache_path})")
    profiles = joined.select(*schemas.PROFILES.names)
    if subset:
        kept, subset["summary"]["kept"] = _kept_profiles(spark, config, subset["rest"], entries, snapshot, common_terms)
        profiles = profiles.unionByName(kept)
    path = write_atomic(profiles, snapshot.path(PROFILES))
    written = read_table(spark, path).agg(F.count("*").alias("rows"), F.countDistinct("user_id").alias("users")).first()
    if written.rows != users or written.users != users:
        raise ProfileRunFailed(f"profiles table has {written.rows} rows for {written.users} users; expected {users}")
    fallbacks_in_output = joined.where(F.col("status") == "fallback").count() if profile_config.is_llm else 0
    histories.unpersist()

    if use_cache:
        _compact(spark, cache_path, list_parts(cache_path))
    else:
        remove_tree(cache_path)

    counts = {
        "model": key[1],
        "reported_models": totals["reported_models"],  # what the server said answered (OpenAI-compatible)
        "prompt_version": key[2],
        "users": users,
        "cache_hits": target_users - users_to_generate,
        "generated_users": users_to_generate,
        "generated_histories": to_generate,
        "calls": totals["calls"],
        "retries": totals["retries"],
        "regenerations": totals["regenerations"],
        "fallbacks": totals["fallbacks"],
        "fallbacks_in_output": fallbacks_in_output,
        "rejects": totals["rejects"],
        "reasons": totals["reasons"],
        "tokens_in": totals["tokens_in"],
        "tokens_out": totals["tokens_out"],
        "chunked_users": totals["chunked_users"],
        "generation_s": round(generation_s, 3),
        "elapsed_s": round(time.monotonic() - started, 3),
        "cache": cache_path if use_cache else None,
        "dead_letters": dead_path,
        "refresh": subset["summary"] if subset else None,
    }
    result = ProfilesResult(run_id, run_date, path, users, int(written.rows), profile_config.generator, counts)
    write_summary(config, "profiles", result.summary())
    limit = profile_config.max_fallback_fraction
    if limit is not None and to_generate and totals["fallbacks"] / max(1, totals["users"]) > limit:
        raise ProfileRunFailed(
            f"{totals['fallbacks']} of {totals['users']} generated users fell back (limit {limit:.0%}): see {dead_path}"
        )
    return result
