"""Semantic columns in Spark: fit (or reuse) the transforms, apply them to a snapshot."""

from __future__ import annotations

import pandas as pd

from profile_features import schemas
from profile_features.catalogue import (
    ITEM_SEMANTIC,
    ITEM_TEXT_EMBEDDINGS,
    TRANSFORMS,
    USER_PROFILE_EMBEDDINGS,
    USER_SEMANTIC,
    DataDir,
    Snapshot,
    Table,
)
from profile_features.config import JobConfig
from profile_features.semantic import (
    apply_transform,
    cached_transform,
    fit_transform_model,
    latest_transform,
    save_transform,
)
from profile_features.semantic_ids import (
    cached_sid_transform,
    fit_semantic_ids,
    latest_sid_transform,
    save_sid_transform,
    sid_columns,
)
from profile_features.spark.common import ddl, write_summary
from profile_features.spark.io import read_table, write_atomic
from profile_features.spark.results import SemanticIdInfo, SemanticResult, TransformInfo

__all__ = ["run_semantic_columns"]

# (kind, embeddings table, vector column, key, column prefix, output table)
_KINDS = (
    ("profile", USER_PROFILE_EMBEDDINGS, "profile_embedding", "user_id", "profile", USER_SEMANTIC),
    ("item", ITEM_TEXT_EMBEDDINGS, "item_text_embedding", "item_id", "item", ITEM_SEMANTIC),
)


def fitted_on_name(snapshot: Snapshot, table: Table) -> str:
    """A transform's provenance: the partition it was fitted on, relative to `data_dir`
    (`user_profile_embeddings/run_date=2026-05-01`), so it stays true when the data moves."""
    return table.name + snapshot.path(table).removeprefix(snapshot.root(table))


def _encoder(frame, where: str) -> str:
    encoders = [row.encoder for row in frame.select("encoder").distinct().limit(3).collect()]
    if len(encoders) != 1:
        raise ValueError(
            f"{where}: vectors of {len(encoders)} encoders {encoders} in one snapshot; "
            "one transform cannot serve two models: rerun the embedding stage for this run date"
        )
    return encoders[0]


def _fit_sample(config: JobConfig, frame, vector_column: str) -> list:
    """The vectors a transform is fitted on: at most `fit_sample_rows` (a seeded sample) on the driver."""
    settings = config.semantic
    frame = frame.where(frame[vector_column].isNotNull())  # profiles with nothing to say have no vector
    total = frame.count()
    sample = (
        frame
        if total <= settings.fit_sample_rows
        else frame.sample(fraction=settings.fit_sample_rows / total, seed=settings.seed)
    )
    return [row[vector_column] for row in sample.select(vector_column).collect()]


def _sid_transform_for(config: JobConfig, frame, encoder: str, fitted_on: str):
    """(semantic-ID transform, its folder, fitted now?) for the item vectors; None when sid_levels is 0."""
    settings = config.semantic
    if not settings.sid_levels:
        return None
    directory = DataDir(config.data_dir).root(TRANSFORMS)
    if not settings.refit:
        existing = latest_sid_transform(directory, encoder, settings.sid_levels, settings.sid_codes)
        if existing is not None:
            return *existing, False
    vectors = _fit_sample(config, frame, "item_text_embedding")
    transform = fit_semantic_ids(vectors, settings.sid_levels, settings.sid_codes, encoder, fitted_on, settings.seed)
    return transform, save_sid_transform(transform, directory), True


def _transform_for(config: JobConfig, kind: str, frame, vector_column: str, fitted_on: str, where: str):
    """(transform, its folder URI, fitted now?); `where` is the partition `frame` was read from."""
    settings = config.semantic
    directory = DataDir(config.data_dir).root(TRANSFORMS)
    encoder = _encoder(frame, where)
    if not settings.refit:
        existing = latest_transform(directory, kind, encoder, settings.components, settings.clusters)
        if existing is not None:
            return *existing, False
    vectors = _fit_sample(config, frame, vector_column)
    needed = max(settings.components, settings.clusters)
    if len(vectors) < needed:
        raise ValueError(
            f"{where}: {len(vectors)} rows have a {vector_column} (profiles with "
            f"nothing to describe have none); fitting {settings.components} components and "
            f"{settings.clusters} clusters needs {needed}: lower semantic.components / semantic.clusters"
        )
    transform = fit_transform_model(
        vectors, kind, settings.components, settings.clusters, encoder, fitted_on, settings.seed
    )
    return transform, save_transform(transform, directory), True


def run_semantic_columns(spark, config: JobConfig, snapshot: Snapshot) -> SemanticResult:
    """Write `user_semantic` and `item_semantic` partitions for the snapshot."""
    outputs: dict[str, str] = {}
    transforms: dict[str, TransformInfo] = {}
    encoder, semantic_ids = None, None
    for kind, table, vector_column, key, prefix, output in _KINDS:
        where, fitted_on = snapshot.path(table), fitted_on_name(snapshot, table)
        frame = read_table(spark, where)
        transform, folder, fitted = _transform_for(config, kind, frame, vector_column, fitted_on, where)
        encoder = encoder or transform.encoder
        if transform.encoder != encoder:  # user-item similarity compares the two spaces
            raise ValueError(
                f"{where}: encoder {transform.encoder} differs from the profiles' "
                f"{encoder}; rerun the embedding stage for run date {snapshot.run_date}"
            )

        sid = _sid_transform_for(config, frame, transform.encoder, fitted_on) if kind == "item" else None
        sid_folder = sid[1] if sid else None

        def partition(batches, folder=folder, key=key, vector_column=vector_column, prefix=prefix, sid=sid_folder):
            transform = cached_transform(folder)  # read by URI on the executor, once per process
            codes = cached_sid_transform(sid) if sid else None
            for batch in batches:
                vectors = batch[vector_column].tolist()
                columns = apply_transform(vectors, transform, prefix)
                if codes is not None:
                    columns = pd.concat([columns, sid_columns(vectors, codes)], axis=1)
                columns.insert(0, key, batch[key].to_numpy())
                columns.insert(1, "event_timestamp", batch["event_timestamp"].to_numpy())
                yield columns

        levels = sid[0].levels if sid else 0
        schema = schemas.semantic_schema(key, prefix, transform.components.shape[0], levels)
        out = frame.select(key, "event_timestamp", vector_column).mapInPandas(partition, schema=ddl(schema))
        outputs[output.name] = write_atomic(out, snapshot.path(output))
        transforms[kind] = TransformInfo(
            transform_id=transform.transform_id,
            fitted_now=fitted,
            fitted_on=transform.fitted_on,
            folder=folder,
            explained_variance=float(transform.explained_variance_ratio.sum()),
        )
        if sid:
            semantic_ids = SemanticIdInfo(
                transform_id=sid[0].transform_id,
                fitted_now=sid[2],
                fitted_on=sid[0].fitted_on,
                folder=sid[1],
                levels=sid[0].levels,
                codes=sid[0].codes,
            )
    result = SemanticResult(snapshot.run_date, outputs, transforms, encoder, semantic_ids)
    write_summary(config, "semantic", result.summary())
    return result
