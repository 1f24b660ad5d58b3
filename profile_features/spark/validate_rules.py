"""The validation stage's Spark plan: Python once per partition, every cross-row rule native.

- Ids are normalised natively (`normalized_id`, the same INVISIBLE_CHARS pandas strips) before the
  catalogue join, so the join key and the duplicate key are one identity.
- Each row is judged alone by `check_*_rows` in `mapInPandas` (per partition, no shuffle).
- The duplicate rule is a window over the key among the rows otherwise accepted, first in raw-record order
  (then source file): the validated tables never hold two rows for one key.
- The batch stage (`staged_interactions`) parses the input once: the native verdicts are written to scratch,
  Python reads only its own rows from there, and the window runs only over the rows whose key hash repeats.
- `StagedOutputs` writes every output to its staging directory first and commits them only once all are
  written, with the existing `commit_directory`: a failing guard or write leaves the previous run whole. The
  batch stage counts the interactions from those written outputs (`written_counts`), before the commit.
"""

from __future__ import annotations

import functools
import uuid

from profile_features import schemas
from profile_features.config import InputRules
from profile_features.spark.common import ddl
from profile_features.validation import (
    DUPLICATE_INTERACTION,
    DUPLICATE_ITEM,
    INTERACTION_OPTIONAL,
    INTERACTION_REQUIRED,
    KNOWN_ITEM,
    MALFORMED,
    NATIVE_MICROS,
    REPLACEMENT,
    SOURCE_FILE,
    UNKNOWN_ITEM,
    check_interaction_rows,
    check_item_rows,
)
from profile_features.validation_rules import INVISIBLE_CHARS, NULL_MARKERS

__all__ = [
    "CLASSIFIED_TAIL",
    "normalized_id",
    "iso_micros",
    "classified_items",
    "classified_interactions",
    "staged_interactions",
    "split",
    "split_counts",
    "written",
    "written_counts",
    "StagedOutputs",
]

CLASSIFIED_TAIL = [
    ("reject_reason", "string"),
    ("source_file", "string"),
    ("record", "string"),
    ("nulled_reason", "string"),
    ("replaced_bytes", "boolean"),
]


def normalized_id(column):
    """The Spark form of `validation_rules.normalize_ids`: `btrim` strips any of the same characters from both
    ends, as Python's `str.strip(chars)` does (and several times faster than the equivalent regex).

    `btrim` over a 112-character set costs about 0.7 us a value, so a value whose first and last characters
    are printable ASCII (none of them is in the set: the usual id) is returned as it is without it; `ascii`
    reads the first byte or code point, and either is in 33..126 exactly when the character is."""
    from pyspark.sql import functions as F

    def printable(text):
        return F.ascii(text).between(0x21, 0x7E)

    return F.when(printable(column) & printable(F.substring(column, -1, 1)), column).otherwise(
        F.btrim(column, F.lit(INVISIBLE_CHARS))
    )


def written(frame, path: str):
    """`frame` written to the Parquet folder `path` and read back with its schema given: reading it would
    otherwise start a job to infer the schema from the footers (a tenth of a second each, per table)."""
    frame.write.mode("error").parquet(path)
    return frame.sparkSession.read.schema(frame.schema).parquet(path)


def _each_batch(check, batches):
    for batch in batches:
        yield check(batch)


def _items_check(rules: InputRules, batch):
    return check_item_rows(batch, rules)


def _interactions_check(rules: InputRules, batch):
    return check_interaction_rows(batch, rules=rules)


def _mark_duplicates(classified, key: list[str], reason: str):
    """Set `reason` on every repeat of `key` but the first among the rows otherwise accepted."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    usable = F.col("reject_reason").isNull()
    order = Window.partitionBy(*key, usable).orderBy("record", "source_file")
    return classified.withColumn(
        "reject_reason",
        F.when(usable & (F.row_number().over(order) > 1), F.lit(reason)).otherwise(F.col("reject_reason")),
    )


# Keys whose hash repeats up to this many are broadcast to the rows; beyond, the join shuffles (still exact).
_BROADCAST_REPEATS = 1_000_000


def key_hash(key: list[str]):
    """The duplicate rule's key as one long: equal keys, equal hashes (a collision only costs a sort)."""
    from pyspark.sql import functions as F

    return F.xxhash64(*key)


def _mark_repeated_duplicates(classified, hashes, key: list[str], reason: str, scratch: str):
    """`_mark_duplicates`, sorting only the rows whose key repeats (usually none or few).

    `classified` carries `_key_hash` (`key_hash(key)`) on its usable rows; `hashes` holds that column for a
    superset of them (the rows usable before the catalogue join, say). Its repeating values, counted by one
    aggregate over one long column (cheaper than sorting every row with its record), are written to `scratch`;
    the window then runs over the rows with such a hash alone, and compares the real key."""
    from pyspark.sql import functions as F

    repeating = written(hashes.groupBy("_key_hash").count().where("count > 1").select("_key_hash"), scratch)
    count = repeating.count()
    if count == 0:
        return classified.drop("_key_hash")
    repeating = repeating.withColumn("_repeats", F.lit(True))
    if count <= _BROADCAST_REPEATS:
        repeating = F.broadcast(repeating)
    marked = classified.join(repeating, "_key_hash", "left")
    candidates = _mark_duplicates(marked.where("_repeats"), key, reason)
    others = marked.where("_repeats IS NULL")
    return candidates.unionByName(others).drop("_key_hash", "_repeats")


def _spread(raw):
    """`raw` over every task slot at least: one small file is one partition, and Python runs per partition."""
    slots = raw.sparkSession.sparkContext.defaultParallelism
    return raw.repartition(slots) if raw.rdd.getNumPartitions() < slots else raw


def classified_items(raw, rules: InputRules):
    """Every raw catalogue row once, with its verdict (schema ITEMS + CLASSIFIED_TAIL)."""
    checked = _spread(raw).mapInPandas(
        functools.partial(_each_batch, functools.partial(_items_check, rules)),
        schema=ddl(schemas.ITEMS, CLASSIFIED_TAIL),
    )
    return _mark_duplicates(checked, ["item_id"], DUPLICATE_ITEM)


def _micros_bound(moment) -> int:
    import pandas as pd

    return int(pd.Timestamp(moment).value // 1000)


# The common ISO-8601 forms, which Spark's own cast reads exactly as `validation_rules._iso_micros` does (checked
# on thousands of random texts by tests/integration/test_validation_identity.py): a date, or a date, `T` or a
# space, hh:mm:ss, an optional `.` fraction of up to 9 digits (both truncate it to the microsecond), and `Z`,
# +hh:mm, -hh:mm or no zone (UTC). ASCII digits only. Every other documented form (no seconds, a `,` fraction,
# lower-case `t`/`z`, +hh or +hhmm zones, offsets beyond Java's 18:00, other scripts' digits) is left to Python.
ISO_COMMON = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"


def iso_micros(text):
    """Epoch microseconds of ISO-8601 `text` (already normalised) in the common forms (ISO_COMMON), exactly as
    `validation_rules._iso_micros` reads it; null for any other value and for an impossible date or time.

    Spark's cast does the reading (a date or naive text gets an explicit `Z` first, so the session time zone
    never applies). Compact on purpose: the same reading in Spark arithmetic over the fields made the stage's
    generated code too large for the JVM to compile, and the validation of 2M rows three times slower than
    Python's parser (BENCHMARKS.md, "Validation throughput")."""
    from pyspark.sql import functions as F

    zoned = (text.substr(-1, 1) == "Z") | text.substr(-6, 1).isin("+", "-")
    explicit = (
        F.when(F.length(text) == 10, F.concat(text, F.lit("T00:00:00Z")))
        .when(zoned, text)
        .otherwise(F.concat(text, F.lit("Z")))
    )
    return F.when(text.rlike(ISO_COMMON), F.unix_micros(explicit.try_cast("timestamp")))


def _native_verdicts(raw, rules: InputRules):
    """(raw rows with `_fast`: the native path can judge the row; the verdict's columns for such a row).

    The common row is judged with Spark expressions that give exactly what `check_interaction_rows` gives:
    not malformed, no U+FFFD, ids non-empty, within max_id_chars and on one line, an integer epoch of at most
    18 digits in range in the first unit that reads it (exact integer arithmetic), ISO-8601 text of the common
    forms in range (`iso_micros`) or a typed source's timestamp in range (`_micros_timestamp`, see
    `io.as_text_columns`), a rating that is null, a null marker or a plain decimal in range. Every other row goes
    to Python.

    The normalised values are computed once, in a projection with a nondeterministic column: Spark pushes no
    filter through it, so the filters that split the rows into the two paths read those columns instead of
    normalising each value again at every mention (Spark shares subexpressions inside a projection, not inside
    a filter; benchmarks/validate_throughput.py).
    """
    projection, fast, verdict = _verdict_columns(tuple(raw.columns), rules.model_dump_json(), _gateway_id())
    flagged = raw.select("*", *projection).withColumn("_fast", fast)  # never null: the filters split every row
    return flagged, verdict


def _gateway_id() -> int:
    """The JVM the cached Columns live in (a process that starts another gateway gets new ones)."""
    from pyspark import SparkContext

    return id(SparkContext._gateway)


@functools.lru_cache(maxsize=16)
def _verdict_columns(columns_present: tuple[str, ...], rules_json: str, gateway: int):
    """(extra projection, `_fast`, verdict) Columns for raw rows with `columns_present`, built once per rules.

    Building them is about 3,000 Py4J calls (0.5-1 s on this machine), more than a stream's micro-batch spends
    judging its rows; Columns are unresolved expressions by name, so one set serves every DataFrame with these
    columns (each `select` analyses them anew)."""
    from pyspark.sql import functions as F

    rules = InputRules.model_validate_json(rules_json)

    def marker(column):
        return F.lower(column).isin(*NULL_MARKERS)

    def on_one_line(text):
        return ~(text.contains("\n") | text.contains("\r"))

    columns = [c for c in (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL) if c in columns_present]
    names = ("user_id", "item_id", "timestamp", "rating", "event_type")
    stamp = normalized_id(F.col("timestamp"))
    projection = [
        *[normalized_id(F.col(c)).alias(f"_norm_{c}") for c in names],
        F.when(stamp.rlike("^[0-9]{1,18}$"), stamp.cast("long")).alias("_epoch"),
        F.when(stamp.substr(5, 1) == "-", iso_micros(stamp)).alias("_iso"),  # an epoch never has "-" there
        F.spark_partition_id().alias("_unpushable"),
    ]
    user, item, stamp, rating, event = (F.col(f"_norm_{c}") for c in names)
    epoch = F.col("_epoch")
    lo, hi = _micros_bound(rules.timestamp_min), _micros_bound(rules.timestamp_max)
    ceil_div = lambda a, b: -(-a // b)  # noqa: E731
    units = ["s", "ms", "us", "ns"] if rules.timestamp_unit == "auto" else [rules.timestamp_unit]
    micros = None
    for unit in units:
        if unit == "ns":  # exact: decimal division, then truncation (the epoch is never negative)
            cond, value = (epoch >= lo * 1000) & (epoch < hi * 1000), (epoch.cast("decimal(18,0)") / 1000).cast("long")
        else:
            scale = {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
            cond, value = (epoch >= ceil_div(lo, scale)) & (epoch < ceil_div(hi, scale)), epoch * F.lit(scale)
        micros = F.when(cond, value) if micros is None else micros.when(cond, value)
    iso = F.col("_iso")
    micros = micros.when((iso >= lo) & (iso < hi), iso)
    if NATIVE_MICROS + "timestamp" in columns_present:  # a typed source's instant: its text need not be parsed
        instant = F.col(NATIVE_MICROS + "timestamp")
        micros = micros.when((instant >= lo) & (instant < hi), instant)
    plain_rating = rating.rlike(r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$")
    rating_value = F.when(plain_rating, rating.cast("double"))
    fast = (
        user.isNotNull()
        & (F.length(user) > 0)
        & (F.length(user) <= rules.max_id_chars)
        & on_one_line(user)
        & item.isNotNull()
        & (F.length(item) > 0)
        & (F.length(item) <= rules.max_id_chars)
        & on_one_line(item)
        & F.coalesce(~F.concat_ws("", *[F.col(c) for c in columns]).contains(REPLACEMENT), F.lit(True))
        & micros.isNotNull()
        & (
            F.col("rating").isNull()
            | marker(rating)
            | (plain_rating & (rating_value >= rules.rating_min) & (rating_value <= rules.rating_max))
        )
    )
    if MALFORMED in columns_present:
        fast &= F.col(MALFORMED).isNull()
    verdict = [
        user.alias("user_id"),
        item.alias("item_id"),
        F.timestamp_micros(micros).alias("timestamp"),
        rating_value.alias("rating"),
        F.when(event.isNull() | marker(event), F.lit("interaction")).otherwise(event).alias("event_type"),
        *_accepted_tail({c: F.col(c) for c in columns}),
    ]
    return projection, F.coalesce(fast, F.lit(False)), verdict


def _accepted_tail(raw_columns: dict, reason=None):
    """The CLASSIFIED_TAIL columns of a row the native path judges, from its raw columns as read ({name: Column});
    `reason`: its reject reason (a Column; None: accepted)."""
    from pyspark.sql import functions as F

    return [
        (F.lit(None).cast("string") if reason is None else reason).alias("reject_reason"),
        F.col(SOURCE_FILE).alias("source_file"),
        F.to_json(F.struct(*[value.alias(c) for c, value in raw_columns.items()]), {"ignoreNullFields": "false"}).alias(
            "record"
        ),
        F.lit(None).cast("string").alias("nulled_reason"),
        F.lit(False).alias("replaced_bytes"),
    ]


def classified_interactions(raw, accepted_items, rules: InputRules, broadcast_items: bool = False, spread: bool = True):
    """Every raw interaction once, with its verdict.

    `spread`: the rows Python judges are spread over every task slot first; planning that (`_spread` asks for the
    partition count) costs a stream's micro-batch ~0.15 s, where those rows are the few bad ones.

    Rows are judged alone first (natively for the common row, else Python per partition), then the
    catalogue's accepted ids (unique, already normalised) are joined on the normalised item id: a usable row
    whose item is not there is "unknown item_id", the last row rule before the duplicate one (as in
    `check_interaction_rows`). The input is read once per path (native, Python) and nothing is written aside:
    the form for a stream's small micro-batches; a batch run takes `staged_interactions`.
    """
    from pyspark.sql import functions as F

    flagged, verdict = _native_verdicts(raw, rules)
    judged = flagged.where("_fast").select(*verdict)
    rest = flagged.where("NOT _fast").select(*raw.columns)
    rest = rest.withColumn(KNOWN_ITEM, F.lit(True))
    checked = (_spread(rest) if spread else rest).mapInPandas(
        functools.partial(_each_batch, functools.partial(_interactions_check, rules)),
        schema=ddl(schemas.INTERACTIONS, CLASSIFIED_TAIL),
    )
    judged = _with_catalogue(judged.unionByName(checked), accepted_items, broadcast_items)
    return _mark_duplicates(judged, ["user_id", "item_id", "timestamp"], DUPLICATE_INTERACTION)


PARSED = ("user_id", "item_id", "timestamp", "rating", "event_type")  # the verdict's leading columns, in order


def _rebuilt(user, item, epoch):
    """The raw text a fast row's verdict gives back: its normalised ids and its epoch's digits."""
    return {"user_id": user, "item_id": item, "timestamp": epoch.cast("string")}


def staged_interactions(raw, accepted_items, rules: InputRules, scratch: str, broadcast_items: bool = False) -> tuple:
    """(`classified_interactions` for a batch run, the input parsed once; the number of raw rows read).

    The native verdicts, with every raw column (a fast row's ids and epoch text only where its verdict does not
    give them back) and a fast row's reject reason (`_reason`: "unknown item_id" where its item is not in the
    catalogue; the join runs in this one pass, not once per output), are written to `{scratch}/lanes`; the rows
    Python judges are read from there (not parsed again) and their verdicts written to `{scratch}/python`. The
    duplicate rule sorts only the rows whose key repeats (`_mark_repeated_duplicates`). A fast row's reject
    reason is a plain column whose null test Parquet answers from its row-group statistics, so the rejects' pass
    skips clean input instead of reading it. The count of raw rows comes from `lanes` (one row per raw row;
    Parquet keeps it in its footers), not from parsing the input again.
    """
    from pyspark.sql import functions as F

    key = ["user_id", "item_id", "timestamp"]
    flagged, verdict = _native_verdicts(raw, rules)
    parsed = [column.alias(f"_v_{name}") for name, column in zip(PARSED, verdict)]
    flagged = _with_unknown_items(flagged.select("*", *parsed), accepted_items, broadcast_items)
    usable = F.col("_fast") & F.col("_reason").isNull()
    fast_hash = F.when(usable, key_hash([f"_v_{name}" for name in key])).alias("_key_hash")
    # A fast row's raw ids and epoch text are written only where they differ from what its verdict gives back
    # (usually they do not): the scratch write is half the stage, and the raw columns the most of it.
    rebuilt = _rebuilt(F.col("_norm_user_id"), F.col("_norm_item_id"), F.col("_epoch"))
    kept = [
        F.when(~F.col("_fast") | ~F.col(c).eqNullSafe(rebuilt[c]), F.col(c)).alias(c) if c in rebuilt else c
        for c in raw.columns
    ]
    lanes_columns = ["_fast", "_reason", *kept, *[f"_v_{name}" for name in PARSED], "_epoch", fast_hash]
    lanes = written(flagged.select(*lanes_columns), f"{scratch}/lanes")
    rebuilt = _rebuilt(F.col("_v_user_id"), F.col("_v_item_id"), F.col("_epoch"))
    raw_columns = [c for c in (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL) if c in raw.columns]
    record_columns = {c: F.coalesce(F.col(c), rebuilt[c]) if c in rebuilt else F.col(c) for c in raw_columns}
    judged = lanes.where("_fast").select(
        *[F.col(f"_v_{name}").alias(name) for name in PARSED],
        *_accepted_tail(record_columns, reason=F.col("_reason")),
        "_key_hash",
    )
    rest = _spread(lanes.where("NOT _fast").select(*raw.columns).withColumn(KNOWN_ITEM, F.lit(True)))
    python = written(
        rest.mapInPandas(
            functools.partial(_each_batch, functools.partial(_interactions_check, rules)),
            schema=ddl(schemas.INTERACTIONS, CLASSIFIED_TAIL),
        ),
        f"{scratch}/python",
    )
    python = _with_catalogue(python, accepted_items, broadcast_items)
    python = python.withColumn("_key_hash", F.when(F.col("reject_reason").isNull(), key_hash(key)))
    hashes = lanes.select("_key_hash").unionByName(python.select("_key_hash")).dropna()
    classified = _mark_repeated_duplicates(
        judged.unionByName(python), hashes, key, DUPLICATE_INTERACTION, f"{scratch}/repeating"
    )
    return classified, lanes.count()


def _catalogue_ids(accepted_items, broadcast_items: bool):
    from pyspark.sql import functions as F

    catalogue = accepted_items.select(F.col("item_id").alias("_catalogue_item_id"), F.lit(True).alias("_known"))
    return F.broadcast(catalogue) if broadcast_items else catalogue


def _with_unknown_items(frame, accepted_items, broadcast_items: bool):
    """`frame` with `_reason`: "unknown item_id" on a fast row whose verdict item (`_v_item_id`) is not an accepted
    catalogue id, else null (a row Python judges is joined after its verdict)."""
    from pyspark.sql import functions as F

    catalogue = _catalogue_ids(accepted_items, broadcast_items)
    joined = frame.join(catalogue, F.col("_fast") & (F.col("_v_item_id") == F.col("_catalogue_item_id")), "left")
    unknown = F.col("_fast") & F.col("_known").isNull()
    return joined.withColumn("_reason", F.when(unknown, F.lit(UNKNOWN_ITEM))).drop("_catalogue_item_id", "_known")


def _with_catalogue(checked, accepted_items, broadcast_items: bool):
    """`checked` with "unknown item_id" on every usable row whose item is not among `accepted_items`."""
    from pyspark.sql import functions as F

    catalogue = _catalogue_ids(accepted_items, broadcast_items)
    flagged = checked.join(catalogue, checked["item_id"] == catalogue["_catalogue_item_id"], "left")
    unknown = F.col("reject_reason").isNull() & F.col("_known").isNull()
    return flagged.withColumn(
        "reject_reason", F.when(unknown, F.lit(UNKNOWN_ITEM)).otherwise(F.col("reject_reason"))
    ).drop("_catalogue_item_id", "_known")


def split(classified, table: str, schema, scratch: str | None) -> tuple:
    """(`classified`, computed once where `scratch` is given; its accepted rows in `schema`; its rejects in REJECTS).

    `classified` is written once (an accepted row without its raw record and file, which only rejects carry)
    to the Parquet folder `scratch` and read back from there (the caller
    deletes it when the run ends): cheaper than an in-memory cache, which spills and slows down
    superlinearly at millions of rows, and never stale (Spark matches cached plans by their shape).
    `scratch` None: `classified` is cheap to compute again for each output (`staged_interactions`).
    """
    from pyspark.sql import functions as F

    if scratch is not None:
        rejected = F.col("reject_reason").isNotNull()
        slim = {name: F.when(rejected, F.col(name)) for name in ("record", "source_file")}  # only rejects keep them
        classified = written(classified.withColumns(slim), scratch)
    accepted = classified.where("reject_reason IS NULL").select(*schema.names)
    rejects = classified.where("reject_reason IS NOT NULL").selectExpr(
        f"'{table}' AS table", "source_file", "reject_reason AS reason", "record"
    )
    return classified, accepted, rejects


def written_counts(accepted, rejects, classified, table: str) -> dict:
    """`split_counts`' counts from the outputs as written (`accepted`, and `rejects` of every table, read back from
    their Parquet), so no pass over `classified` counts what the writes already settled: the accepted rows come
    from the Parquet footers, the rejects from their one small table, and only the rows that can carry a nulled
    value or replaced bytes (those Python judged: the filter prunes the native path's) are grouped."""
    from pyspark.sql import functions as F

    counts = _no_counts() | {"accepted": accepted.count()}
    for row in rejects.where(F.col("table") == table).groupBy("reason").count().collect():
        counts["rejected_by_reason"][row.reason] = row["count"]
    marked = classified.where("nulled_reason IS NOT NULL OR replaced_bytes")  # alone, it reaches the scans
    kept = F.col("reject_reason").isNull().alias("kept")
    for row in marked.groupBy(kept, "nulled_reason", "replaced_bytes").count().collect():
        _tally_marks(counts, row.kept, row.nulled_reason, row.replaced_bytes, row["count"])
    return counts


def _no_counts() -> dict:
    return {"accepted": 0, "rejected_by_reason": {}, "nulled_by_reason": {}, "replaced_bytes": 0}


def _tally_marks(counts: dict, kept: bool, nulled_reason: str | None, replaced_bytes: bool, n: int) -> None:
    """Count `n` rows' nulled value (kept rows only) and replaced bytes (every row)."""
    if kept and nulled_reason is not None:
        counts["nulled_by_reason"][nulled_reason] = counts["nulled_by_reason"].get(nulled_reason, 0) + n
    counts["replaced_bytes"] += n if replaced_bytes else 0


def split_counts(classified, table: str, schema, scratch: str | None) -> tuple:
    """(accepted rows in `schema`, rejects in REJECTS, counts), `classified` computed once (`split`).

    counts: {"accepted": n, "rejected_by_reason": {...}, "nulled_by_reason": {...}, "replaced_bytes": n}.
    """
    from pyspark.sql import functions as F

    classified, accepted, rejects = split(classified, table, schema, scratch)
    counts = _no_counts()
    grouped = classified.groupBy("reject_reason", "nulled_reason", "replaced_bytes").agg(F.count(F.lit(1)).alias("n"))
    for row in grouped.collect():
        kept = row.reject_reason is None
        if kept:
            counts["accepted"] += row.n
        else:
            by_reason = counts["rejected_by_reason"]
            by_reason[row.reject_reason] = by_reason.get(row.reject_reason, 0) + row.n
        _tally_marks(counts, kept, row.nulled_reason, row.replaced_bytes, row.n)
    return accepted, rejects, counts


class StagedOutputs:
    """Tables written to staging first, committed together once every one is written.

    The staging and lock paths are the ones `io.write_atomic` uses, so `commit_directory` (and its repair of
    a killed commit) treats them as it treats any write. Between the first and the last rename a crash can
    still leave some tables new and some old; every failure before that (a guard, a failed write) leaves
    all of them as the previous run left them.
    """

    def __init__(self, spark):
        from profile_features.spark.commit import HadoopFS

        self._fs = HadoopFS(spark)
        self._staged: list[tuple[str, str, str]] = []  # (staging, target, lock)

    def stage(self, frame, path: str) -> str:
        """Write `frame` for the table at `path`; returns the staging directory (readable until `commit`)."""
        from profile_features.spark.commit import table_paths

        path = path.rstrip("/")
        table = table_paths(path)
        staging = f"{table.staging_dir}/{table.name}-{uuid.uuid4().hex}"
        self._staged.append((staging, path, table.lock))
        frame.write.mode("error").parquet(staging)
        return staging

    def commit(self) -> None:
        from profile_features.spark.commit import commit_directory

        while self._staged:
            staging, target, lock = self._staged[0]
            commit_directory(self._fs, staging, target, lock=lock)
            self._staged.pop(0)

    def discard(self) -> None:
        """Delete what was staged but not committed (after a failure)."""
        for staging, _, _ in self._staged:
            if self._fs.exists(staging):
                self._fs.delete(staging)
        self._staged.clear()
