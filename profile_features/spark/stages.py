"""Stage runners for validation, histories and embeddings (the others: profile_job.py, semantic_job.py,
student_job.py; `spark.registry` lists them all).

Every table they read and write is declared in `profile_features.catalogue`; a per-snapshot runner
takes the `Snapshot` it writes (re-running a snapshot replaces its partitions) and returns a typed
result (`spark.results`) whose `summary()` also lands in `<data_dir>/runs/`.
"""

from __future__ import annotations

import logging
import uuid

import pandas as pd

from profile_features import schemas
from profile_features.catalogue import (
    ENCODERS,
    HISTORIES,
    INTERACTIONS,
    ITEM_STATS,
    ITEM_TEXT_EMBEDDINGS,
    ITEMS,
    PROFILES,
    REJECTS,
    STAGING,
    USER_PROFILE_EMBEDDINGS,
    USER_STATS,
    DataDir,
    Snapshot,
)
from profile_features.config import JobConfig
from profile_features.embeddings import cached_encoder, default_model_path, embed_items, embed_profiles, encoder_name
from profile_features.encoder_backends import choose_backend
from profile_features.spark.commit_fs import HadoopFS
from profile_features.spark.common import ddl, threads_per_task, write_summary
from profile_features.spark.histories import history_rows
from profile_features.spark.io import read_input, read_table, write_atomic
from profile_features.spark.progress import SparkTaskProgress
from profile_features.spark.results import EmbeddingsResult, HistoriesResult, ValidateResult
from profile_features.spark.stats import item_stats, user_stats
from profile_features.spark.validate_rules import (
    StagedOutputs,
    classified_items,
    split,
    split_counts,
    staged_interactions,
    written_counts,
)
from profile_features.tombstones import reject_forgotten
from profile_features.validation import (
    INTERACTION_OPTIONAL,
    INTERACTION_REQUIRED,
    ITEM_OPTIONAL,
    ITEM_REQUIRED,
    UNKNOWN_ITEM,
    InputDataError,
    InputSchemaError,
    require_columns,
)

__all__ = ["run_validate", "run_histories", "run_embeddings"]

log = logging.getLogger(__name__)

_BROADCAST_ITEMS = 2_000_000  # accepted catalogue ids up to this many are broadcast to the interaction join


def _with_optional(frame, optional):
    from pyspark.sql import functions as F

    for name in optional:
        if name not in frame.columns:
            frame = frame.withColumn(name, F.lit(None).cast("string"))
    return frame


def input_warnings(tables: dict) -> list[str]:
    """What a person should hear about the validation counts: empty tables, tables mostly or wholly
    rejected (with the main reasons), and item ids that match no catalogue row."""
    warnings = []
    for name, table in tables.items():
        read, rejected, reasons = table["read"], table["rejected"], table["rejected_by_reason"]
        where = f"{name}: {table['source']}"
        if table.get("ignored_columns"):
            warnings.append(
                f"{where}: columns {table['ignored_columns']} are not used (map one to ours with the input's "
                f"`columns`, e.g. columns: {{description: {table['ignored_columns'][0]}}})"
            )
        if not read:
            warnings.append(f"{where} has no rows")
            continue
        if rejected * 2 <= read:
            continue
        top = ", ".join(f"{r} ({n})" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        share = "every row" if not table["accepted"] else f"{rejected / read:.0%} of rows"
        message = f"{where}: {share} rejected ({rejected} of {read}): {top}"
        if max(reasons, key=reasons.get) == UNKNOWN_ITEM:
            message += "; do its item ids match the catalogue's (same form, e.g. '7' vs '7.0')?"
        warnings.append(message)
    return warnings


def _read_raw(spark, table_input, name: str, required, optional):
    """The raw table with the optional columns added and unknown ones dropped; (table, dropped names).

    Raises:
        InputSchemaError: naming the file, for a missing column, or column names equal up to case (Spark
            resolves names without case, so it could not tell them apart).
    """
    from pyspark.errors import AnalysisException

    try:
        raw = read_input(spark, table_input, name)
    except AnalysisException as err:
        raise InputSchemaError(f"{table_input.path}: {name} input cannot be read: {err}") from err
    present = [c for c in raw.columns if not c.startswith("_")]
    folded = [c.lower() for c in present]
    clashing = sorted({c for c in present if folded.count(c.lower()) > 1})
    if clashing:
        raise InputSchemaError(f"{table_input.path}: {name} input has columns equal up to case: {clashing}")
    require_columns(present, required, name, table_input.path)
    ignored = [c for c in present if c not in (*required, *optional)]
    return _with_optional(raw, optional).drop(*ignored), ignored


def run_validate(spark, config: JobConfig) -> ValidateResult:
    """Validate the raw items and interactions; write accepted rows and rejects, as one commit.

    Every output (validated/items, validated/interactions, rejects) is written to staging and committed
    only after every table's counts are in and the accounting guard (read = accepted + rejected) holds;
    the summary is written last. So a failing guard or write leaves the previous run's outputs whole.

    Raises:
        InputSchemaError: when a required column is missing (names file and column).
        InputDataError: when no row of a table is usable (after committing the rejects and the summary).
    """
    if config.inputs is None:
        raise ValueError("config.inputs is not set: point inputs.interactions and inputs.items at your data")
    rules = config.inputs.rules
    summary: dict = {"job": "validate", "tables": {}, "rules": rules.model_dump(mode="json")}
    raw_items, ignored_items = _read_raw(spark, config.inputs.items, "items", ITEM_REQUIRED, ITEM_OPTIONAL)
    raw_events, ignored_events = _read_raw(
        spark, config.inputs.interactions, "interactions", INTERACTION_REQUIRED, INTERACTION_OPTIONAL
    )
    data = DataDir(config.data_dir)
    fs, scratch = HadoopFS(spark), f"{data.root(STAGING)}/validate-{uuid.uuid4().hex}"
    try:
        items, item_rejects, item_counts = split_counts(
            classified_items(raw_items, rules), "items", schemas.ITEMS, f"{scratch}-items"
        )
        broadcast_items = item_counts["accepted"] <= _BROADCAST_ITEMS
        classified, events_read = staged_interactions(
            raw_events, items, rules, f"{scratch}-interactions", broadcast_items
        )
        classified, events, event_rejects = split(
            reject_forgotten(classified, config.data_dir),  # erasure: a forgotten user's rows are rejects, id hashed
            "interactions",
            schemas.INTERACTIONS,
            # a shuffled catalogue join is worth materialising once; a broadcast one is cheap to repeat per output
            None if broadcast_items else f"{scratch}-interactions/classified",
        )
        staged = StagedOutputs(spark)
        try:
            staged.stage(items, data.root(ITEMS))
            written_events = staged.stage(events, data.root(INTERACTIONS))
            rejects = item_rejects.unionByName(event_rejects)
            written_rejects = staged.stage(rejects, data.root(REJECTS))
            event_counts = written_counts(
                spark.read.schema(events.schema).parquet(written_events),
                spark.read.schema(rejects.schema).parquet(written_rejects),
                classified,
                "interactions",
            )
            for name, table_input, read, counts, ignored in (
                ("items", config.inputs.items, raw_items.count(), item_counts, ignored_items),
                ("interactions", config.inputs.interactions, events_read, event_counts, ignored_events),
            ):
                rejected = sum(counts["rejected_by_reason"].values())
                summary["tables"][name] = {
                    "source": table_input.path,
                    "read": read,
                    "accepted": counts["accepted"],
                    "rejected": rejected,
                    "rejected_by_reason": counts["rejected_by_reason"],
                    "nulled_by_reason": counts["nulled_by_reason"],  # optional values nulled, their rows kept
                    "rows_with_replaced_bytes": counts["replaced_bytes"],  # invalid UTF-8 read as U+FFFD
                    "ignored_columns": ignored,
                }
                if read != counts["accepted"] + rejected:  # rows vanished or were doubled: commit nothing
                    raise RuntimeError(
                        f"{name} ({table_input.path}): read {read} rows but accounted for "
                        f"{counts['accepted'] + rejected}"
                    )
            summary["rejects_path"] = data.root(REJECTS)
            staged.commit()
        finally:
            staged.discard()
    finally:
        for part in ("items", "interactions"):
            if fs.exists(f"{scratch}-{part}"):
                fs.delete(f"{scratch}-{part}")
    summary["warnings"] = input_warnings(summary["tables"])
    for warning in summary["warnings"]:
        log.warning("%s", warning)
    result = ValidateResult(summary["tables"], summary["rules"], summary["rejects_path"], tuple(summary["warnings"]))
    write_summary(config, "validate", result.summary())
    unusable = [name for name, table in summary["tables"].items() if not table["accepted"]]
    if unusable:  # every later stage would fail on an empty table, far from the cause
        raise InputDataError("; ".join(w for w in summary["warnings"] if w.split(":", 1)[0] in unusable))
    return result


def run_histories(spark, config: JobConfig, snapshot: Snapshot) -> HistoriesResult:
    """Cut histories and user/item stats at the snapshot's cutoff, all native aggregations (no Python workers).

    `snapshot` must carry its cutoff (`Snapshot(data_dir, cutoff)`; `registry.run_stage` resolves one as an
    entry file does: `history.cutoff`, else now).
    """
    from pyspark.sql import functions as F

    cutoff = snapshot.cutoff
    if cutoff is None:
        raise ValueError(f"build_histories needs a cutoff, not only the run date {snapshot.run_date}")
    max_length = config.history.max_length
    interactions = read_table(spark, snapshot.root(INTERACTIONS))
    items = read_table(spark, snapshot.root(ITEMS))
    # Not cached: each of the three outputs re-reads Parquet, cheaper than materialising the join in memory.
    events = interactions.join(F.broadcast(items), "item_id", "inner")

    histories = history_rows(events, cutoff, max_length)
    users = user_stats(events, cutoff)
    item_counts = item_stats(events, cutoff)
    # Every catalogue item gets a row: an unseen item has count 0, not a missing feature.
    item_rows = (
        items.select("item_id")
        .join(item_counts.drop("event_timestamp"), "item_id", "left")
        .select(
            "item_id",
            F.lit(cutoff).cast("timestamp").alias("event_timestamp"),
            F.coalesce("item_interaction_count", F.lit(0)).cast("long").alias("item_interaction_count"),
            "item_mean_rating",
        )
    )
    out = {
        table.name: write_atomic(frame, snapshot.path(table))
        for table, frame in ((HISTORIES, histories), (USER_STATS, users), (ITEM_STATS, item_rows))
    }
    # Counted from the written user stats (one row per user): no second pass over the events.
    totals = read_table(spark, out[USER_STATS.name]).agg(F.count(F.lit(1)), F.sum("user_interaction_count")).first()
    result = HistoriesResult(cutoff, snapshot.run_date, out, totals[0], totals[1] or 0)
    write_summary(config, "histories", result.summary())
    return result


def run_embeddings(spark, config: JobConfig, snapshot: Snapshot) -> EmbeddingsResult:
    """Embed the snapshot's profiles and the catalogue's item texts."""
    profiles = read_table(spark, snapshot.path(PROFILES))
    items = read_table(spark, snapshot.root(ITEMS))
    as_of = pd.Timestamp(profiles.selectExpr("max(event_timestamp) AS t").first().t, tz="UTC")
    embedding_config = config.embedding
    threads = threads_per_task(spark, config.embedding.threads_per_worker)
    choice = choose_backend(
        embedding_config,
        embedding_config.export_dir or snapshot.root(ENCODERS),
        embedding_config.model_path or default_model_path(),
        encoder_name(embedding_config.model_path),
    )
    # Spread rows over every task slot: one small Parquet file is one partition.
    slots = spark.sparkContext.defaultParallelism

    def profile_partition(batches):
        encoder = cached_encoder(embedding_config, threads, choice)  # loaded once per worker process
        for batch in batches:
            yield embed_profiles(batch, encoder)

    sanitize = config.profile.sanitize  # served and embedded as the prompts read it

    def item_partition(batches):
        encoder = cached_encoder(embedding_config, threads, choice)
        for batch in batches:
            yield embed_items(batch, encoder, as_of, sanitize)

    user_vectors = profiles.repartition(slots).mapInPandas(
        profile_partition, schema=ddl(schemas.USER_PROFILE_EMBEDDINGS)
    )
    item_vectors = items.repartition(slots).mapInPandas(item_partition, schema=ddl(schemas.ITEM_TEXT_EMBEDDINGS))
    with SparkTaskProgress(spark, "embeddings"):
        out = {
            table.name: write_atomic(frame, snapshot.path(table))
            for table, frame in ((USER_PROFILE_EMBEDDINGS, user_vectors), (ITEM_TEXT_EMBEDDINGS, item_vectors))
        }
    result = EmbeddingsResult(
        run_date=snapshot.run_date,
        outputs=out,
        profiles=read_table(spark, out[USER_PROFILE_EMBEDDINGS.name]).count(),
        items=read_table(spark, out[ITEM_TEXT_EMBEDDINGS.name]).count(),
        encoder=choice,
    )
    write_summary(config, "embeddings", result.summary())
    return result
