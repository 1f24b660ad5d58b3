"""Settings for the Feast objects: where the tables are, entity names, TTLs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from profile_features import storage
from profile_features.config import StrictModel
from profile_features.safe_yaml import load_yaml

__all__ = ["EntitySettings", "FeastSettings", "load_feast_settings"]


class EntitySettings(StrictModel):
    """An entity as the user's repo names it. Our tables key on `user_id`/`item_id`;
    a different `join_key` is mapped onto those columns."""

    name: str
    join_key: str


class FeastSettings(StrictModel):
    """What `build_definitions` needs. Relative `data_dir` is resolved against the
    settings file's folder when loaded with `load_feast_settings`."""

    data_dir: str
    # "file": FileSource (DuckDB or Dask offline store). "spark": SparkSource, for the
    # Spark offline store and materialization engine; reads `spark_tables[table]`
    # when given (a metastore table), else the Parquet under data_dir with
    # run_date partition pruning.
    source: Literal["file", "spark"] = "file"
    spark_tables: dict[str, str] = Field(default_factory=dict)
    user: EntitySettings = EntitySettings(name="user", join_key="user_id")
    item: EntitySettings = EntitySettings(name="item", join_key="item_id")
    # How long a snapshot's values stay valid for point-in-time joins and online reads.
    ttl_days: int = Field(365, ge=0)
    # Prepended to every view, source and service name, so ours cannot clash with the repo's own
    # (Feast rejects two objects of one name): "pf_" gives pf_user_profile, pf_gbdt_ranker, ...
    name_prefix: str = Field("", pattern=r"^[A-Za-z0-9_]*$")
    # Groups of views: the plain behavioural stats (user_stats, item_stats; the no-semantics baseline,
    # which a repo may already have) and the distilled student's view with its similarity column.
    stats: bool = True
    student: bool = True
    # PCA components per semantic view. None: read from the newest transform the semantic job saved
    # under <data_dir>/transforms, so the views always match the columns the job wrote.
    semantic_components: int | None = Field(None, gt=0)
    # Semantic-ID levels served as item_sid_0..L-1. None: the newest saved semantic-ID transform's
    # (0 when the semantic job saved none: semantic.sid_levels 0).
    semantic_id_levels: int | None = Field(None, ge=0)
    owner: str = ""


def load_feast_settings(path: str | Path) -> FeastSettings:
    path = Path(path)
    raw = load_yaml(path.read_text(), str(path)) or {}  # refuses alias bombs
    data_dir = str(raw.get("data_dir", "data"))
    if not storage.is_uri(data_dir) and not Path(data_dir).is_absolute():
        # Absolute paths: DuckDB reads a FileSource path relative to the process's
        # working directory, not the repo, so relative paths break `feast -c repo`.
        # URIs (s3://, hdfs://, file://) are kept as they are.
        raw["data_dir"] = str((path.parent / data_dir).resolve())
    try:
        return FeastSettings.model_validate(raw)
    except Exception as err:
        raise ValueError(f"invalid Feast settings {path}: {err}") from err
