"""Regression tests of issue 33 through the real Spark validation stage: one identity per id, one reading
per timestamp, text that is not what it seems, and one commit per run (the pandas functions it wraps:
tests/unit/test_validation_identity.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from profile_features.validation import classify_interactions, classify_items
from tests.unit.test_validation_identity import SAME_ID

# ---------------------------------------------------------------- real Spark


def _validate(tmp_path, events_text: str, items_text: str, **rules):
    from pyspark.sql import SparkSession

    from profile_features.config import JobConfig
    from profile_features.spark.stages import run_validate

    (tmp_path / "events.csv").write_bytes(events_text.encode("utf-8", "surrogateescape"))
    (tmp_path / "items.csv").write_bytes(items_text.encode("utf-8", "surrogateescape"))
    config = JobConfig.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": {
                "interactions": {"path": str(tmp_path / "events.csv")},
                "items": {"path": str(tmp_path / "items.csv")},
                "rules": rules,
            },
        }
    )
    return run_validate(SparkSession.getActiveSession(), config).summary()


def _table(tmp_path, name):
    return pd.read_parquet(tmp_path / "data" / name)


@pytest.mark.spark
def test_spark_ids_are_one_identity_and_tables_hold_one_row_per_key(tmp_path, spark):
    items = "item_id,title\n" + "".join(f'"{i}",T{n}\n' for n, i in enumerate(SAME_ID)) + "i2,Beta\n"
    events = (
        "user_id,item_id,timestamp\n"
        'u1,i1,1700000000\n"u1\u2003",\u200bi1,1700000000\n"\u00a0u1","i1 ",1700000000\nu2,"i2\u00a0",1700000001\n'
    )
    summary = _validate(tmp_path, events, items)
    tables = summary["tables"]
    assert tables["items"]["accepted"] == 2 and tables["items"]["rejected_by_reason"] == {
        "duplicate item_id": len(SAME_ID) - 1
    }
    assert tables["interactions"]["accepted"] == 2
    assert tables["interactions"]["rejected_by_reason"] == {"duplicate interaction": 2}
    kept_items, kept_events = _table(tmp_path, "validated/items"), _table(tmp_path, "validated/interactions")
    assert sorted(kept_items.item_id) == ["i1", "i2"]
    assert not kept_events.duplicated(["user_id", "item_id", "timestamp"]).any()
    assert sorted(kept_events.user_id) == ["u1", "u2"]
    for table in tables.values():
        assert table["read"] == table["accepted"] + table["rejected"]
    # Spark and pandas keep the same row
    pandas_kept = classify_items(pd.read_csv(tmp_path / "items.csv", dtype=str, keep_default_na=False))
    assert set(pandas_kept.loc[pandas_kept.reject_reason.isna(), "title"]) == set(kept_items.title)


@pytest.mark.spark
def test_spark_time_text_and_optional_values(tmp_path, spark):
    items = 'item_id,title,year\ni1,Alpha,NA\ni2,Beta,abc\ni3,"\u200b\u00a0",1999\ni4,Caf\udce9,2001\n'
    events = (
        "user_id,item_id,timestamp,rating\n"
        "u1,i1,now,4\nu1,i1,yesterday,4\nu1,i2,12/01/2023,4\nu1,i2,2023-11-14 22:15 PST,4\n"
        "u2,i1,2023-11-14T23:15:00+01:00,NA\nu2,i2,1700000100000,great\nu3,i1,1850-01-01,4\nu3,i2,-3786825600,4\n"
    )
    summary = _validate(tmp_path, events, items)
    items_t, events_t = summary["tables"]["items"], summary["tables"]["interactions"]
    assert items_t["rejected_by_reason"] == {"empty title": 1}
    assert items_t["nulled_by_reason"] == {"unparseable year": 1}  # "NA" is a null, "abc" is counted
    assert items_t["rows_with_replaced_bytes"] == 1
    assert events_t["rejected_by_reason"] == {"unparseable timestamp": 4, "timestamp out of range": 2}
    assert events_t["nulled_by_reason"] == {"unparseable rating": 1} and events_t["accepted"] == 2
    kept = _table(tmp_path, "validated/interactions")
    assert set(kept.timestamp) == {pd.Timestamp("2023-11-14T22:15:00Z")}


@pytest.mark.spark
def test_spark_an_unclosed_quote_is_a_reject_not_lost_rows(tmp_path, spark):
    items = "item_id,title\ni1,Alpha\ni2,Beta\n"
    events = 'user_id,item_id,timestamp\nu1,i1,1700000000\nu2,"i2,1700000001\nu3,i1,1700000002\nu4,i1,1700000003\n'
    summary = _validate(tmp_path, events, items)
    reasons = summary["tables"]["interactions"]["rejected_by_reason"]
    assert reasons == {"line break inside user_id, item_id or timestamp (an unclosed CSV quote?)": 1}
    assert summary["tables"]["interactions"]["accepted"] == 1
    record = _table(tmp_path, "rejects").query("table == 'interactions'").record.iloc[0]
    assert "u4" in json.dumps(json.loads(record))  # the swallowed rows are in the reject, not gone


@pytest.mark.spark
def test_spark_a_failing_guard_leaves_the_previous_run_whole(tmp_path, spark, monkeypatch):
    from profile_features.spark import stages

    good = "user_id,item_id,timestamp\nu1,i1,1700000000\n"
    _validate(tmp_path, good, "item_id,title\ni1,Alpha\n")
    before = {name: _table(tmp_path, name) for name in ("validated/items", "validated/interactions", "rejects")}
    runs = sorted((tmp_path / "data" / "runs").iterdir())
    real = stages.written_counts

    def doubled(accepted, rejects, classified, table):  # fault injection: a doubled row trips the guard
        counts = real(accepted, rejects, classified, table)
        counts["accepted"] += 1
        return counts

    monkeypatch.setattr(stages, "written_counts", doubled)
    bad_items = "item_id,title\ni1,Other\ni9,New\n"
    with pytest.raises(RuntimeError, match=r"events\.csv.*read 2 rows but accounted for 3"):
        _validate(tmp_path, good + "u2,i9,1700000001\n", bad_items)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(_table(tmp_path, name), frame)
    assert sorted((tmp_path / "data" / "runs").iterdir()) == runs
    assert not any((tmp_path / "data" / "validated" / "_staging").glob("*-*"))
    assert not any((tmp_path / "data" / "_staging").glob("validate-*"))  # the scratch tables are gone


@pytest.mark.spark
@pytest.mark.parametrize("broadcast_items", [2_000_000, 0], ids=["broadcast-catalogue", "shuffled-catalogue"])
def test_spark_native_and_python_paths_give_the_pandas_verdicts(tmp_path, spark, monkeypatch, broadcast_items):
    """The common row is judged with Spark expressions, the rest in Python: both must equal the pandas rules,
    whether the catalogue is broadcast to the join or (a large one) shuffled and the verdicts materialised."""
    from profile_features.spark import stages

    monkeypatch.setattr(stages, "_BROADCAST_ITEMS", broadcast_items)
    rows = [
        ["u1", "i1", "1700000000", "4"], ["u1", "i1", "1700000000", "4"], [" u2", "i1\u00a0", "1700000000123", ""],
        ["u3", "i2", "1700000000123456", "NA"], ["u4", "i2", "1700000000123456789", "-1"],
        ["u5", "i1", "2023-11-14", "5"],
        ["u6", "i9", "1700000001", "3"], ["u7", "i1", "0", "3"], ["u8", "i1", "99999999999999999999", "3"],
        ["u9", "", "1700000002", "3"], ["u10", "i2", "1700000003", "4.25"], ["u11", "i2", "+1700000003", "1e2"],
        ["u12", "i1", "1700000004", "abc"], ["u13", "i1", "1700000004.5", "4"], ["u\u200b", "i2", "1700000005", "2"],
    ]  # fmt: skip
    events = "user_id,item_id,timestamp,rating\n" + "".join(",".join(f'"{v}"' for v in row) + "\n" for row in rows)
    summary = _validate(tmp_path, events, "item_id,title\ni1,Alpha\ni2,Beta\n")
    batch = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]).replace("", None)
    expected = classify_interactions(batch, {"i1", "i2"})
    table = summary["tables"]["interactions"]
    assert table["rejected_by_reason"] == expected.reject_reason.value_counts().to_dict()
    assert (
        table["nulled_by_reason"] == expected.loc[expected.reject_reason.isna()].nulled_reason.value_counts().to_dict()
    )
    kept = _table(tmp_path, "validated/interactions").sort_values(["user_id", "timestamp"]).reset_index(drop=True)
    want = expected.loc[expected.reject_reason.isna(), kept.columns].sort_values(["user_id", "timestamp"])
    want = want.reset_index(drop=True).astype({"timestamp": kept.timestamp.dtype})
    pd.testing.assert_frame_equal(kept, want, check_dtype=False)


@pytest.mark.spark
def test_spark_header_names_equal_up_to_case_name_the_file(tmp_path, spark):
    from profile_features.validation import InputSchemaError

    with pytest.raises(InputSchemaError, match=r"items\.csv: items input .*title"):
        _validate(tmp_path, "user_id,item_id,timestamp\nu1,i1,1700000000\n", "item_id,title,Title\ni1,A,B\n")


@pytest.mark.spark
def test_spark_a_quoted_line_break_reads_the_same_whatever_the_files_line_endings(tmp_path, spark):
    """One catalogue, saved with LF and with CRLF line endings: a quoted multi-line description (and a
    lone CR inside a title) is kept as the same text, with `\\n` inside."""
    rows = ["item_id,title,description", 'i1,"Alpha\rOmega","first line', 'second line"', "i2,Beta,plain"]
    events = "user_id,item_id,timestamp\nu1,i1,1700000000\nu1,i2,1700000001\n"
    kept = {}
    for ending in ("\n", "\r\n"):
        where = tmp_path / repr(ending).strip("'").replace("\\", "")
        where.mkdir()
        summary = _validate(where, events, ending.join(rows) + ending)
        assert summary["tables"]["items"]["accepted"] == 2, summary["tables"]["items"]
        kept[ending] = _table(where, "validated/items").sort_values("item_id").reset_index(drop=True)
    assert kept["\n"].equals(kept["\r\n"])
    assert kept["\n"].description.tolist() == ["first line\nsecond line", "plain"]
    assert kept["\n"].title.tolist() == ["Alpha\nOmega", "Beta"]


@pytest.mark.spark
def test_spark_and_pandas_normalise_every_character_alike(spark):
    """`normalized_id` skips its strip when both edges are printable ASCII: every BMP character at either edge,
    alone, doubled and inside, must still normalise as pandas does."""
    from pyspark.sql import functions as F

    from profile_features.spark.validate_rules import normalized_id
    from profile_features.validation_rules import normalize_ids

    bmp = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    values = [form.format(c=c) for c in bmp for form in ("{c}", "x{c}", "{c}x", "{c}x{c}", "a{c}b", "{c}{c}")]
    values += ["", "x", " x ", "~", "!~"]
    frame = spark.createDataFrame(pd.DataFrame({"raw": values}))
    got = frame.select(normalized_id(F.col("raw")).alias("id")).toPandas().id
    want = normalize_ids(pd.Series(values, dtype="object"))
    assert got.tolist() == want.tolist()


@pytest.mark.spark
def test_spark_takes_a_parquet_timestamp_natively_and_exactly(tmp_path, spark):
    """A Parquet timestamp column (renamed by the input's mapping, micro- or nanosecond) is judged natively from
    its instant, to the microsecond; an out-of-range one still gets Python's reason."""
    from pyspark.sql import functions as F

    from profile_features.config import InputRules, JobConfig, TableInput
    from profile_features.spark.io import read_input
    from profile_features.spark.stages import run_validate
    from profile_features.spark.validate_rules import _native_verdicts

    stamps = pd.to_datetime(
        [
            "2023-11-14T22:15:00.123456Z",
            "2001-01-01T00:00:00.000001Z",
            "2099-12-31T23:59:59.999999Z",
            "1850-01-01T00:00:00.000000Z",
        ]
    )
    events = pd.DataFrame({"uid": ["u1", "u2", "u3", "u4"], "item_id": ["i1"] * 4, "seen_at": stamps})
    (tmp_path / "ns").mkdir()
    events.to_parquet(tmp_path / "ns" / "events.parquet")  # pandas writes nanoseconds
    events.to_parquet(tmp_path / "events.parquet", coerce_timestamps="us", allow_truncated_timestamps=False)
    # the nanosecond file twice: once more after its first read has turned Spark's nanosAsLong on for the session
    for folder in (tmp_path, tmp_path / "ns", tmp_path / "ns"):
        table = TableInput(path=str(folder / "events.parquet"), columns={"user_id": "uid", "timestamp": "seen_at"})
        raw = read_input(spark, table, "interactions")
        for name in ("rating", "event_type"):
            raw = raw.withColumn(name, F.lit(None).cast("string"))
        flagged, verdict = _native_verdicts(raw, InputRules())
        fast = flagged.orderBy("user_id").select("_fast").toPandas()._fast.tolist()
        assert fast == [True, True, True, False]  # 1850 is out of range: Python says why
        judged = flagged.where("_fast").select(*verdict).orderBy("user_id").toPandas()
        assert judged.timestamp.dt.tz_localize("UTC").tolist() == stamps[:3].tolist()
    (tmp_path / "items.csv").write_text("item_id,title\ni1,Alpha\n")
    config = JobConfig.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": {"interactions": table.model_dump(), "items": {"path": str(tmp_path / "items.csv")}},
        }
    )
    summary = run_validate(spark, config).summary()
    assert summary["tables"]["interactions"]["rejected_by_reason"] == {"timestamp out of range": 1}
    kept = _table(tmp_path, "validated/interactions").sort_values("user_id")
    assert kept.timestamp.dt.tz_convert("UTC").tolist() == stamps[:3].tolist()


def _iso_texts(count: int, seed: int = 0) -> list[str]:
    """Random ISO-8601-like texts: every field in and just out of its range, every fraction length and zone
    form, and mutations of each (a character dropped, doubled or swapped for another script's digit)."""
    import random

    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        date = f"{rng.choice([0, 1, 1600, 1899, 1900, 1970, 2000, 2023, 2024, 2100, 9999]):04d}"
        date += f"-{rng.randint(0, 13):02d}-{rng.choice([0, 1, 15, 28, 29, 30, 31, 32]):02d}"
        text = date
        if rng.random() < 0.8:
            text += rng.choice("Tt x") + f"{rng.choice([0, 9, 23, 24]):02d}:{rng.choice([0, 59, 60]):02d}"
            if rng.random() < 0.7:
                text += f":{rng.choice([0, 30, 59, 60]):02d}"
                if rng.random() < 0.5:
                    text += rng.choice(".,") + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 10)))
            hours, minutes = rng.choice([0, 5, 14, 23, 24]), rng.choice([0, 30, 45, 60])
            text += rng.choice(
                ["", "Z", "z", f"+{hours:02d}", f"-{hours:02d}{minutes:02d}", f"+{hours:02d}:{minutes:02d}"]
            )
        mutation = rng.random()
        where = rng.randrange(len(text))
        if mutation < 0.1:
            text = text[:where] + text[where + 1 :]
        elif mutation < 0.2:
            text = text[:where] + text[where] + text[where:]
        elif mutation < 0.25:
            text = text[:where] + "\u0663" + text[where + 1 :]  # ARABIC-INDIC DIGIT THREE
        texts.append(text)
    return texts


@pytest.mark.spark
def test_spark_reads_iso_text_natively_exactly_as_python_does(spark):
    """`iso_micros` (Spark) against `validation_rules._iso_micros` (pandas) on thousands of random ISO-like
    texts, under a session time zone that is not UTC: every value Spark reads is Python's instant, and Spark
    reads every value of the common forms that Python reads; the rest is left to Python."""
    import re

    from pyspark.sql import functions as F

    from profile_features.spark.validate_rules import ISO_COMMON, iso_micros
    from profile_features.validation_rules import _iso_micros

    texts = _iso_texts(6000) + [t.replace("t", "T").replace("x", "T").replace(",", ".") for t in _iso_texts(6000, 1)]
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")  # naive text and dates must not read it
    try:
        frame = spark.createDataFrame(pd.DataFrame({"text": texts}))
        # as text: a nullable long column reaches pandas as float64, which rounds instants far from 1970
        got = frame.select(iso_micros(F.col("text")).cast("string").alias("us")).toPandas().us.astype("Int64")
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    want = _iso_micros(pd.Series(texts, dtype="string"))

    def offset_minutes(text):
        zone = re.search(r"[+-](\d\d):(\d\d)$", text)
        return int(zone[1]) * 60 + int(zone[2]) if zone else 0

    # the common forms, with offsets within Java's +/-18:00 (Python reads up to 23:59: those go to Python)
    common = pd.Series([re.fullmatch(ISO_COMMON[1:-1], t) is not None and offset_minutes(t) <= 18 * 60 for t in texts])
    assert want.notna().sum() > 2000 and (want.notna() & common).sum() > 1000 and (want.isna() & common).sum() > 100
    read = got.notna()
    pd.testing.assert_series_equal(got[read], want[read], check_names=False)
    assert (read == (common & want.notna())).all()


@pytest.mark.spark
def test_spark_judges_iso_text_rows_natively_with_pythons_verdicts(tmp_path, spark):
    """A CSV of ISO timestamps: valid in-range texts of the common forms take the native path; other forms, out
    of range, impossible dates and times and other scripts' digits go to Python; every verdict equals pandas'."""
    from pyspark.sql import functions as F

    from profile_features.config import InputRules
    from profile_features.spark.validate_rules import _native_verdicts

    stamps = [
        "2023-11-14", "2023-11-14T22:15:00.1234567+05:30", "2023-11-14 22:15Z", "2024-02-29t23:59:59,5-0130",
        "1850-01-01", "2023-02-29", "2023-11-14T24:00:00", "\u0662\u0660\u0662\u0663-11-14", "2023-11-14T22:15:00+0530",
    ]  # fmt: skip
    rows = [[f"u{n}", "i1", stamp] for n, stamp in enumerate(stamps)]
    raw = spark.createDataFrame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    for name in ("rating", "event_type", "_source_file"):
        raw = raw.withColumn(name, F.lit(None).cast("string"))
    flagged, _ = _native_verdicts(raw, InputRules())
    fast = dict(flagged.select("user_id", "_fast").toPandas().itertuples(index=False))
    assert [fast[f"u{n}"] for n in range(len(stamps))] == [True, True, False, False] + [False] * 5
    events = "user_id,item_id,timestamp\n" + "".join(",".join(f'"{v}"' for v in row) + "\n" for row in rows)
    summary = _validate(tmp_path, events, "item_id,title\ni1,Alpha\n")
    expected = classify_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), {"i1"})
    assert summary["tables"]["interactions"]["rejected_by_reason"] == expected.reject_reason.value_counts().to_dict()
    kept = _table(tmp_path, "validated/interactions").sort_values("user_id").reset_index(drop=True)
    want = expected.loc[expected.reject_reason.isna()].sort_values("user_id").reset_index(drop=True)
    assert kept.timestamp.dt.tz_localize(None).tolist() == want.timestamp.dt.tz_localize(None).tolist()


@pytest.mark.spark
@pytest.mark.parametrize("broadcast_repeats", [1_000_000, 0], ids=["broadcast", "shuffled"])
def test_spark_batch_form_keeps_the_first_of_each_key_across_both_paths(
    tmp_path, spark, monkeypatch, broadcast_repeats
):
    """`staged_interactions` (one parse; the window over repeating keys only) classifies every row as the stream's
    `classified_interactions` and pandas do, when one key's rows are judged on both paths: the same instant as
    an epoch (native) and as lower-case ISO text (Python), ids with and without invisible edges, bad rows."""
    import numpy as np
    from pyspark.sql import functions as F

    from profile_features.config import InputRules
    from profile_features.spark import validate_rules

    monkeypatch.setattr(validate_rules, "_BROADCAST_REPEATS", broadcast_repeats)
    rng = np.random.default_rng(7)
    users, items = ["u1", " u1", "u1\u200b", "u2", "u3", ""], ["i1", "i1\u00a0", "i2", "i9"]
    stamps = ["1700000000", "2023-11-14t22:13:20z", "1700000000000", "1700000060", "2023-11-14T22:14:20Z", "soon"]
    ratings = ["4", "5", "", "NA", "9", "x"]
    rows = [[rng.choice(pool) for pool in (users, items, stamps, ratings)] for _ in range(400)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]).replace("", None)
    raw = spark.createDataFrame(frame.astype(object).where(frame.notna(), None))
    raw = raw.withColumn("event_type", F.lit(None).cast("string")).withColumn("_source_file", F.lit("events.csv"))
    catalogue = spark.createDataFrame(pd.DataFrame({"item_id": ["i1", "i2"]}))
    rules = InputRules()

    def verdicts(classified):
        rows = classified.select("record", "reject_reason", F.col("timestamp").cast("string").alias("ts")).toPandas()
        return sorted(rows.fillna("-").itertuples(index=False, name=None))

    staged, read = validate_rules.staged_interactions(raw, catalogue, rules, str(tmp_path / "scratch"), True)
    assert read == len(rows)
    streamed = validate_rules.classified_interactions(raw, catalogue, rules, True)
    assert verdicts(staged) == verdicts(streamed)
    expected = classify_interactions(frame, {"i1", "i2"})
    got = staged.groupBy("reject_reason").count().toPandas().fillna("accepted")
    want = expected.reject_reason.fillna("accepted").value_counts()
    assert dict(zip(got.reject_reason, got["count"])) == want.to_dict()
    assert want["duplicate interaction"] > 50 and want["accepted"] > 5  # the rule had work on both paths
    # the window's keys, no more: those repeating among the rows usable after the catalogue join
    usable = expected[expected.reject_reason.isin([None, "duplicate interaction"])]
    repeating_keys = usable.groupby(["user_id", "item_id", "timestamp"]).size().gt(1).sum()
    assert len(pd.read_parquet(tmp_path / "scratch" / "repeating")) == repeating_keys
