"""Job configuration: pydantic models loaded from one YAML file.

Every stage reads the same `JobConfig`; a spark-submit entry file loads it with
`load_config(path, overrides)` where overrides are `--set dotted.key=value` strings.
Models are frozen after load: a job never mutates its config, and what was run
is exactly what the YAML (plus overrides) said.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from profile_features.profiles.config import ProfileConfig
from profile_features.safe_yaml import load_yaml
from profile_features.strict_model import StrictModel

__all__ = [
    "StrictModel",
    "TableInput",
    "InputRules",
    "InputsConfig",
    "SampleConfig",
    "HistoryConfig",
    "ProfileConfig",
    "EmbeddingConfig",
    "SemanticConfig",
    "StudentJobConfig",
    "SparkConfig",
    "StreamSource",
    "StreamConfig",
    "JobConfig",
    "load_config",
    "apply_overrides",
    "ConfigError",
    "describe_validation_error",
]


class TableInput(StrictModel):
    """One input table: a Parquet or CSV file or directory."""

    path: str
    format: Literal["parquet", "csv"] | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)  # CSV only
    # Our column name -> the file's, e.g. {description: text, user_id: reviewerID}: a column under
    # another name would otherwise be ignored (listed in the validation summary) or missing.
    columns: dict[str, str] = {}

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        return "csv" if self.path.lower().rstrip("/").endswith(".csv") else "parquet"


class InputRules(StrictModel):
    """What a usable value is. A value outside these is rejected with its reason, never read as a
    different value (an epoch in milliseconds is not the year 55,840).

    `timestamp_unit`: the unit of numeric timestamps. `auto` reads each value in the first unit of
    s, ms, us, ns that puts it inside [timestamp_min, timestamp_max); each value has one reading while
    timestamp_max's epoch is under 1000x timestamp_min's (with the default max: any min after 1970-02-17).
    """

    timestamp_unit: Literal["auto", "s", "ms", "us", "ns"] = "auto"
    timestamp_min: datetime = datetime(1980, 1, 1, tzinfo=timezone.utc)
    timestamp_max: datetime = datetime(2100, 1, 1, tzinfo=timezone.utc)
    rating_min: float = 0.0
    rating_max: float = 100.0
    year_min: int = 1000
    year_max: int = 2100
    max_id_chars: int = Field(256, gt=0)  # a longer user or item id is a broken row, not an id

    @field_validator("timestamp_min", "timestamp_max")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class InputsConfig(StrictModel):
    """Where the raw interactions and the item catalogue come from, and what counts as usable.

    Interactions need `user_id`, `item_id`, `timestamp` (epoch seconds, ms, us or ns, or
    ISO-8601), optionally `rating` and `event_type`. Items need `item_id` and `title`,
    optionally `genres` ("|"-separated), `year` and `description`. CSV is RFC 4180 (quoted
    fields may hold commas, newlines and doubled quotes); Parquet ids are strings or integers.
    """

    interactions: TableInput
    items: TableInput
    rules: InputRules = InputRules()


class SampleConfig(StrictModel):
    """Generated sample data (the embedded default of `profile-features demo`)."""

    users: int = Field(300, gt=0)
    items: int = Field(400, gt=0)
    mean_interactions: int = Field(40, gt=2)
    seed: int = 7
    # Robustness knobs (defaults give the original sample). taste_strength 1 = tastes drive
    # interactions, 0 = popularity alone; item_text "short_noisy" replaces every item's text
    # with review snippets (no genres, no year) that name its hidden category only sometimes;
    # history_lengths "geometric" gives most users a handful of interactions; users arrive
    # uniformly over `arrival_days` and interact every `gap_days` on average.
    taste_strength: float = Field(1.0, ge=0.0, le=1.0)
    item_text: Literal["rich", "short_noisy"] = "rich"
    history_lengths: Literal["poisson", "geometric"] = "poisson"
    arrival_days: float = Field(120.0, gt=0)
    gap_days: float = Field(1.5, gt=0)


class HistoryConfig(StrictModel):
    """How a user's history is cut: the last `max_length` interactions before `cutoff`."""

    max_length: int = Field(50, gt=0)
    # Histories (and so profiles) only see interactions strictly before the cutoff;
    # None means "after the latest interaction in the data".
    cutoff: datetime | None = None

    @field_validator("cutoff")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class EmbeddingConfig(StrictModel):
    """Sentence encoder settings. `model_path` None means the packaged all-MiniLM-L6-v2."""

    model_path: str | None = None
    # 16: fastest of 16/32/64 for the exported backends (texts are length-sorted, so small batches pad
    # little); see BENCHMARKS.md, issue 18.
    batch_size: int = Field(16, gt=0)
    normalize: bool = True
    # Torch threads per Spark Python worker. None: cores / concurrent tasks, so that
    # local[N] does not oversubscribe the CPU with N workers x N threads.
    threads_per_worker: int | None = None
    # The runtime: `torch` runs sentence-transformers itself; `onnx` / `openvino` run an ONNX export
    # of the same model made once (fp32, or int8 weights). A host that cannot run the chosen one
    # faithfully (checked against the torch model's vectors) falls back to torch, with a warning.
    # `precision` is the exported backends' (torch is fp32); `bf16` (OpenVINO only) computes the fp32
    # export in bfloat16 where the CPU has bf16 units (else in f32).
    # Default: the fastest that keeps the vectors (BENCHMARKS.md, issue 18); int8 reorders a user's
    # nearest items too often (top-10 overlap 0.86).
    backend: Literal["torch", "onnx", "openvino"] = "openvino"
    precision: Literal["fp32", "bf16", "int8"] = "bf16"
    export_dir: str | None = None  # where exports are kept; None: <data_dir>/encoders
    # A sanity check against broken kernels (int8 keeps ~0.99 on average, ~0.97 on a one-letter text);
    # fidelity itself is measured in benchmarks/embed_throughput.py.
    min_probe_cosine: float = Field(0.95, gt=0, le=1)

    @model_validator(mode="after")
    def _bf16_needs_openvino(self):
        if self.precision == "bf16" and self.backend == "onnx":
            raise ValueError("embedding.precision bf16 needs embedding.backend openvino (onnx: fp32 or int8)")
        return self


class SemanticConfig(StrictModel):
    """Compressed dimensions and cluster ids of profile and item embeddings."""

    components: int = Field(16, gt=0)
    clusters: int = Field(16, gt=1)
    # False: reuse the newest saved transform that fits (columns keep their meaning
    # across snapshots); True: fit a new one on this snapshot.
    refit: bool = False
    fit_sample_rows: int = Field(200_000, gt=0)
    seed: int = 0
    # Semantic IDs of items (residual k-means of their text vectors): `sid_levels` codes per item,
    # served as item_sid_0..L-1; 0 turns them off. `sid_codes` per level; None: about sqrt(items).
    sid_levels: int = Field(3, ge=0, le=8)
    sid_codes: int | None = Field(None, gt=1, le=4096)


class StudentJobConfig(StrictModel):
    """The distilled student in the batch pipeline (needs the `torch` extra)."""

    enabled: bool = True
    config: str | None = None  # student YAML (student.config.StudentConfig); None: its defaults
    overrides: list[str] = Field(default_factory=list)  # e.g. ["train.epochs=20"]
    # Score with this checkpoint; None: the one `train_student` wrote for the snapshot.
    checkpoint: str | None = None
    batch_size: int = Field(512, gt=0)


class SparkConfig(StrictModel):
    """Session settings. Under spark-submit everything left unset here is spark-submit's (its
    --master, --conf, PYSPARK_PYTHON); a plain `python` run (demo, tests) gets a local session."""

    master: str | None = None  # None: spark-submit's --master, or local[*] outside spark-submit
    app_name: str = "profile-features"
    conf: dict[str, str] = Field(default_factory=dict)
    log_level: str | None = None  # None: leave Spark's own (log4j2 config); e.g. "WARN" for the demo

    @field_validator("conf", mode="before")
    @classmethod
    def _as_text(cls, value):
        """Spark options are strings; YAML reads `8` and `true` as a number and a bool."""
        if not isinstance(value, dict):
            return value
        text = lambda v: str(v).lower() if isinstance(v, bool) else str(v)  # noqa: E731
        return {str(k): text(v) for k, v in value.items()}


class StreamSource(StrictModel):
    """Where new interaction events (or catalogue items) arrive: a folder files land in (csv, parquet, json), or Kafka.

    Rows have the interactions' columns (user_id, item_id, timestamp, optional rating, event_type), or for
    `items_source` the catalogue's (item_id, title, optional genres, year, description), under
    these names or mapped by `columns`; Kafka's `value` is one JSON object per row with those keys.
    `options` go to Spark's `readStream` as they are: `maxFilesPerTrigger`, or for Kafka
    `kafka.bootstrap.servers`, `subscribe`, `startingOffsets`, `maxOffsetsPerTrigger`.
    """

    path: str | None = None  # the folder (path or URI) for file formats
    format: Literal["csv", "parquet", "json", "kafka"] = "csv"
    delimiter: str = Field(",", min_length=1, max_length=1)  # CSV only
    columns: dict[str, str] = {}  # ours -> theirs, as TableInput.columns
    # CSV only: the files' header, in order (their names). None: the header of a file already in the folder
    # when the stream starts. Every file must carry this header: one that differs stops the stream, naming it.
    header: list[str] | None = None
    options: dict[str, str] = {}

    @model_validator(mode="after")
    def _path_for_files(self):
        if self.format != "kafka" and not self.path:
            raise ValueError(f"stream.source.path is required for format {self.format!r}")
        return self


class StreamConfig(StrictModel):
    """The streaming student refresh (`spark_jobs/stream_student.py`): new events -> fresh `user_student` rows
    in the Feast online store (and appended offline), within seconds; no LLM is called from the stream."""

    source: StreamSource | None = None
    checkpoint: str | None = None  # Spark's checkpoint (offsets, commits); None: <data_dir>/stream/checkpoint
    # New catalogue items (the catalogue's columns: item_id, title, optional genres, year, description): each gets
    # its text embedding, semantic columns and content-only student vector online and offline, without a retrain.
    items_source: StreamSource | None = None
    items_checkpoint: str | None = None  # None: <data_dir>/stream/items_checkpoint
    trigger_seconds: float = Field(1.0, ge=0)  # a micro-batch at most this often (0: as soon as one ends)
    available_now: bool = False  # process what has arrived, then stop (tests, catch-up runs, a cron schedule)
    feature_repo: str = "feature_repo"  # the applied Feast repo the online rows are written through
    feature_store_yaml: str | None = None  # another feature_store.yaml (e.g. the Redis one)
    user_view: str = "user_student"  # the Feast view the rows are written to (with the repo's name prefix)
    # The views the item stream writes (with the repo's name prefix); None: not written online.
    item_text_view: str | None = "item_text"
    item_semantic_view: str | None = "item_semantic"  # only when the snapshot has semantic columns
    item_student_view: str | None = "item_student"  # only when the student is enabled
    online: bool = True  # False: offline rows and the refresh queue only
    # Disagreement-triggered LLM refresh: a touched user whose predicted profile is this far (1 - cosine) from
    # their last LLM profile is queued for `generate_profiles` (`profile.only_users`), at most this many per hour.
    # None: the `drift_quantile` of the snapshot's own drifts, i.e. further than all but 1% of users were from a
    # profile written on the very history the student read (drift's noise floor differs by data, encoder and
    # student: the sample's snapshot drifts 0.04-0.26, so a fixed 0.5 would never queue anyone there).
    drift_threshold: float | None = Field(None, gt=0, le=2)
    drift_quantile: float = Field(0.99, gt=0, lt=1)
    refresh_budget_per_hour: int = Field(100, ge=0)


class JobConfig(StrictModel):
    """Root config shared by all batch jobs."""

    data_dir: str = "feature_repo/data"
    inputs: InputsConfig | None = None  # None: the demo generates sample data
    history: HistoryConfig = HistoryConfig()
    profile: ProfileConfig = ProfileConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    semantic: SemanticConfig = SemanticConfig()
    student: StudentJobConfig = StudentJobConfig()
    spark: SparkConfig = SparkConfig()
    stream: StreamConfig = StreamConfig()

    def table_path(self, name: str) -> str:
        """The folder of the catalogue table named `name` (a URI when `data_dir` is one, else an absolute path).

        Kept for callers not yet on the catalogue; new code asks `catalogue.DataDir(data_dir).root(TABLE)`.
        """
        from profile_features.catalogue import DataDir, table_named  # the catalogue imports the schemas

        return DataDir(self.data_dir).root(table_named(name))


class ConfigError(ValueError):
    """The config (file or `--set`) is not valid; the message is one line naming the file and the field."""


def _dict_field_at(model: type[BaseModel] | None, parts: list[str]) -> int | None:
    """How many leading `parts` lead to a dict-valued field (`spark.conf`, `inputs.items.columns`),
    or None. The rest of a dotted key after such a field is one key: `spark.conf.spark.driver.memory`
    sets the Spark option `spark.driver.memory`, not a nested `spark: {driver: ...}`."""
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        kinds = [field.annotation, *get_args(field.annotation)]
        if any(get_origin(kind) is dict or kind is dict for kind in kinds):
            return depth + 1
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    return None


def apply_overrides(raw: dict[str, Any], overrides: list[str], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides; values are parsed as YAML scalars.

    With `model` (the config class), a key that reaches a dict-valued field keeps the rest of its
    path whole as one key, and its value as written (Spark options are strings: `4` stays "4").
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not of the form dotted.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {item!r}: empty part in the key {key!r}")
        whole = _dict_field_at(model, parts)
        into_dict = whole is not None and whole < len(parts)
        if into_dict:
            parts = [*parts[:whole], ".".join(parts[whole:])]
        node = raw
        for part in parts[:-1]:
            if node.get(part) is None:  # absent, or left empty in the YAML (`inputs:`)
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a mapping")
        node[parts[-1]] = value if into_dict else load_yaml(value, f"--set {key}")
    return raw


def describe_validation_error(err: ValidationError) -> str:
    """pydantic's errors as one line: `history.max_lenght: unknown key; embedding.batch_size: ...`."""
    messages = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"]) or "<top level>"
        text = "unknown key (not a setting here)" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] not in ("extra_forbidden", "missing") and "input" in error:
            text += f" (got {error['input']!r})"
        messages.append(f"{where}: {text}")
    return "; ".join(messages)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """Load a `JobConfig` from YAML (or defaults when `path` is None) plus overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        raw = load_yaml(text, str(path)) or {}  # refuses alias bombs before pydantic walks them
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    raw = apply_overrides(raw, overrides or [], JobConfig)
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as err:  # pydantic's message names the field; add the file, keep it one line
        raise ConfigError(f"invalid config {path or '<defaults>'}: {describe_validation_error(err)}") from err
