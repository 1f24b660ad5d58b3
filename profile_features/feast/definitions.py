"""Entities, sources, feature views, the similarity view and the ranker service.

A view's fields are its table's columns, read from the catalogue's Arrow schema (the semantic views' from
`schemas.semantic_schema`), so a view cannot drift from what the jobs write."""

from __future__ import annotations

import types
from dataclasses import dataclass, fields
from datetime import timedelta

import pyarrow as pa

from profile_features import schemas
from profile_features.catalogue import (
    ITEM_SEMANTIC,
    ITEM_STATS,
    ITEM_STUDENT,
    ITEM_TEXT_EMBEDDINGS,
    TRANSFORMS,
    USER_PROFILE_EMBEDDINGS,
    USER_SEMANTIC,
    USER_STATS,
    USER_STUDENT,
    DataDir,
    Table,
)
from profile_features.feast.settings import FeastSettings
from profile_features.feast.similarity import user_item_similarity
from profile_features.feast.sources import source_for

__all__ = ["Definitions", "build_definitions", "service_columns", "feast_type", "schema_fields", "PROVENANCE_FIELDS"]

# What generated a profile and encoded its vector, served beside the vector.
PROVENANCE_FIELDS = (*(name for name, _ in schemas.PROVENANCE), "encoder")
# Not features: the event time is the source's timestamp field (the entity key, mapped by the source, is skipped too).
_NOT_FEATURES = ("event_timestamp",)


@dataclass(frozen=True)
class Definitions:
    """Every Feast object the plugin contributes; `objects()` for `globals().update`."""

    user: object
    item: object
    user_profile: object
    item_text: object
    user_stats: object
    item_stats: object
    user_semantic: object
    item_semantic: object
    user_student: object | None
    item_student: object | None
    user_item_similarity: object
    gbdt_ranker: object
    two_tower: object
    name_prefix: str = ""
    repo_entities: tuple[str, ...] = ()  # entities the repo passed in and defines itself

    def objects(self) -> dict[str, object]:
        """Our Feast objects by module-level name (prefixed like their Feast names, so a
        `globals().update` cannot overwrite the repo's own variables)."""
        skip = {"name_prefix", "repo_entities", *self.repo_entities}
        return {
            self.name_prefix + f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name) is not None
        }


def service_columns(service, full_feature_names: bool = False) -> list[str]:
    """The feature columns of a Feast `FeatureService`, in its declared order.

    Feast returns a view's columns in set order (`feast.utils._group_feature_refs`), which changes from
    one process to the next; select `frame[keys + service_columns(service)]` for a fixed order, e.g. for
    a model's feature matrix. `gbdt_ranker`'s order: user_stats (user_interaction_count, user_mean_rating,
    user_days_active), item_stats (item_interaction_count, item_mean_rating), user_semantic
    (profile_pc_0..k-1, profile_cluster), item_semantic (item_pc_0..k-1, item_cluster, item_sid_0..L-1),
    user_item_similarity (profile_item_similarity[, student_item_similarity, student_item_score]), then
    user_student (profile_drift, student_history_len); groups that are switched off are left out.
    `two_tower`'s: profile_embedding, item_text_embedding[, student_embedding, student_profile_embedding,
    student_item_embedding]. A service read back from the registry keeps the order.

    Args:
        service: the `FeatureService` (ours, or `store.get_feature_service(name)`).
        full_feature_names: names as `view__feature`, as Feast returns them with `full_feature_names=True`.
    """
    return [
        f"{projection.name_to_use()}__{feature.name}" if full_feature_names else feature.name
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def _fresh_copy(function):
    """A copy of `function`: Feast's decorator rewrites the `__module__` of what it wraps,
    after which the source can no longer be found for a second build in this process."""
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__module__, copy.__doc__, copy.__qualname__ = function.__module__, function.__doc__, function.__qualname__
    return copy


def semantic_components(settings: FeastSettings) -> int:
    """The configured number of PCA components, else the one the newest saved transforms have."""
    if settings.semantic_components is not None:
        return settings.semantic_components
    from profile_features.semantic import newest_transform

    directory = DataDir(settings.data_dir).root(TRANSFORMS)
    found = {kind: newest_transform(directory, kind) for kind in ("profile", "item")}
    sizes = {kind: int(saved[0].components.shape[0]) for kind, saved in found.items() if saved is not None}
    if not sizes:
        raise ValueError(
            f"{directory}: no saved semantic transform to read the number of PCA components from; run the "
            "semantic columns job before `feast apply`, or set semantic_components in the plugin's settings"
        )
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{directory}: the newest profile and item transforms differ in components: {sizes}")
    return next(iter(sizes.values()))


def semantic_id_levels(settings: FeastSettings) -> int:
    """The configured number of semantic-ID levels, else the newest saved semantic-ID transform's (0: none)."""
    if settings.semantic_id_levels is not None:
        return settings.semantic_id_levels
    from profile_features.semantic_ids import newest_sid_transform

    found = newest_sid_transform(DataDir(settings.data_dir).root(TRANSFORMS))
    return found[0].levels if found else 0


def feast_type(arrow_type: pa.DataType):
    """The Feast type of a column of Arrow type `arrow_type` (the only place the two type systems meet)."""
    from feast.types import Array, Bool, Float32, Float64, Int64, String

    if pa.types.is_list(arrow_type):
        return Array(feast_type(arrow_type.value_type))
    scalars = {pa.string(): String, pa.float32(): Float32, pa.float64(): Float64, pa.int64(): Int64, pa.bool_(): Bool}
    if arrow_type not in scalars:
        raise TypeError(f"no Feast type for the Arrow type {arrow_type}")
    return scalars[arrow_type]


def schema_fields(schema: pa.Schema, key: str | None) -> list:
    """Feast `Field`s of a table's feature columns: every column but the entity key and the event time, in order."""
    from feast import Field

    skip = {key, *_NOT_FEATURES}
    return [Field(name=column.name, dtype=feast_type(column.type)) for column in schema if column.name not in skip]


def _entity(given, settings_entity, description: str):
    """The repo's own Entity when given (its join key must hold strings, as our tables do), else ours."""
    from feast import Entity, ValueType

    if given is None:
        return Entity(
            name=settings_entity.name,
            join_keys=[settings_entity.join_key],
            value_type=ValueType.STRING,
            description=description,
        )
    if given.value_type not in (ValueType.STRING, ValueType.UNKNOWN):
        raise ValueError(
            f"entity {given.name!r}: join key {given.join_key!r} is {given.value_type.name}, but the plugin's tables "
            "key users and items by string ids; use a STRING entity (or let the plugin create one)"
        )
    return given


def build_definitions(settings: FeastSettings, user_entity=None, item_entity=None) -> Definitions:
    """Build the Feast objects for `settings` (imports Feast lazily).

    Args:
        settings: tables, names, groups of views (see `FeastSettings`).
        user_entity, item_entity: the repo's own Feast `Entity` objects to key our views on (their
            join keys are mapped onto our `user_id`/`item_id` columns); they are then not part of
            `objects()`, since the repo already defines them. None: entities from `settings`.
    """
    from feast import FeatureService, FeatureView, Field
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Bool, Float64, String

    ttl = timedelta(days=settings.ttl_days)
    prefix = settings.name_prefix
    user = _entity(user_entity, settings.user, "A user of the ranking system")
    item = _entity(item_entity, settings.item, "A catalogue item")
    components = semantic_components(settings)
    tags = {"plugin": "profile-features"}

    def view(name: str, entity, table: Table, description: str, schema: pa.Schema | None = None):
        """The view `name` of `table`'s feature columns (`schema`: for tables whose columns depend on the config)."""
        return FeatureView(
            name=prefix + name,
            entities=[entity],
            ttl=ttl,
            schema=schema_fields(schema or table.schema, table.key),
            online=True,
            source=source_for(settings, table, entity.join_key),
            description=description,
            tags=tags,
            owner=settings.owner,
        )

    user_profile = view(
        "user_profile",
        user,
        USER_PROFILE_EMBEDDINGS,
        "Sentence embedding of the user's generated profile, with what generated it",
    )
    item_text = view(
        "item_text", item, ITEM_TEXT_EMBEDDINGS, "Sentence embedding of the item's title, genres and description"
    )
    user_stats = item_stats = None
    if settings.stats:
        user_stats = view("user_stats", user, USER_STATS, "Plain behavioural user columns (the no-semantics baseline)")
        item_stats = view("item_stats", item, ITEM_STATS, "Item popularity and mean rating before the snapshot cutoff")

    def semantic(name, entity, table: Table, column_prefix, what, levels=0, more=""):
        return view(
            name,
            entity,
            table,
            f"PCA components and k-means cluster id of the {what} embedding{more} (one fitted transform, id "
            "served alongside)",
            schemas.semantic_schema(table.key, column_prefix, components, levels),
        )

    levels = semantic_id_levels(settings)
    user_semantic = semantic("user_semantic", user, USER_SEMANTIC, "profile", "profile")
    item_semantic = semantic(
        "item_semantic",
        item,
        ITEM_SEMANTIC,
        "item",
        "item text",
        levels,
        ", and its semantic ID (coarse-to-fine residual k-means codes, categorical)" if levels else "",
    )
    numeric = lambda fv: fv[[f.name for f in fv.features if f.dtype not in (String, Bool)]]  # noqa: E731  GBDTs take numbers
    user_student = item_student = None
    similarity_sources = [user_profile[["profile_embedding"]], item_text[["item_text_embedding"]]]
    similarity_schema = [Field(name="profile_item_similarity", dtype=Float64)]
    if settings.student:
        user_student = view(
            "user_student",
            user,
            USER_STUDENT,
            "The distilled SASRec student: user representation, predicted profile vector, drift from the "
            "last LLM profile",
        )
        item_student = view(
            "item_student",
            item,
            ITEM_STUDENT,
            "The student's item side: the vector and bias it scores the item with (items training never "
            "saw, and new ones, by their content alone)",
        )
        similarity_sources[1:1] = [
            user_student[["student_profile_embedding", "student_embedding"]],
            item_student[["student_item_embedding", "student_item_bias"]],
        ]
        similarity_schema += [
            Field(name="student_item_similarity", dtype=Float64),
            Field(name="student_item_score", dtype=Float64),
        ]
    similarity = on_demand_feature_view(
        name=prefix + "user_item_similarity",
        sources=similarity_sources,
        schema=similarity_schema,
        mode="pandas",
        description="Cosine of the profile (and student-predicted profile) with the item text embedding, "
        "and the student's next-item score of the item, at request time",
        tags=tags,
    )(_fresh_copy(user_item_similarity))
    stats = [user_stats, item_stats] if settings.stats else []
    gbdt_ranker = FeatureService(
        name=prefix + "gbdt_ranker",
        features=[*stats, numeric(user_semantic), numeric(item_semantic), similarity]
        + ([user_student[["profile_drift", "student_history_len"]]] if user_student else []),
        description="Scalar columns for a GBDT ranker: behaviour plus LLM-profile semantics "
        "(profile_features.feast.service_columns gives their order)",
        tags=tags,
    )
    two_tower = FeatureService(
        name=prefix + "two_tower",
        features=[user_profile[["profile_embedding"]], item_text[["item_text_embedding"]]]
        + (
            [user_student[["student_embedding", "student_profile_embedding"]], item_student[["student_item_embedding"]]]
            if user_student
            else []
        ),
        description="Dense vectors for a two-tower model's user and item towers",
        tags=tags,
    )
    return Definitions(
        user,
        item,
        user_profile,
        item_text,
        user_stats,
        item_stats,
        user_semantic,
        item_semantic,
        user_student,
        item_student,
        similarity,
        gbdt_ranker,
        two_tower,
        prefix,
        tuple(name for name, given in (("user", user_entity), ("item", item_entity)) if given is not None),
    )
