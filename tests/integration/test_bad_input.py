"""Bad input through the real Spark validation stage: every row read is accepted or rejected with a
reason and its raw text, nothing crashes on a value, and a file that cannot be used says why."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from profile_features.validation import InputDataError, InputSchemaError

pytestmark = pytest.mark.spark

ITEMS_CSV = "item_id,title,genres\ni1,Alpha,Drama\ni2,Beta,Comedy\n"


def csv(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def validate(tmp_path, interactions, items, delimiter: str = ",", item_columns: dict | None = None, **rules):
    from profile_features.config import load_config
    from profile_features.spark.stages import run_validate

    job = {
        "data_dir": str(tmp_path / "data"),
        "inputs": {
            "interactions": {"path": str(interactions), "delimiter": delimiter},
            "items": {"path": str(items), "columns": item_columns or {}},
            "rules": rules,
        },
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    from pyspark.sql import SparkSession

    return run_validate(SparkSession.getActiveSession(), load_config(str(tmp_path / "job.yaml"))).summary()


def rejects(tmp_path) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "data" / "rejects")


def accepted(tmp_path, table: str) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "data" / "validated" / table)


def test_csv_is_read_as_rfc_4180_and_a_row_with_the_wrong_field_count_is_a_reject(tmp_path, spark):
    items = tmp_path / "items.csv"
    items.write_text(
        "item_id,title,genres\n"
        'i1,"Alpha, the\nsequel",Drama\n'  # a quoted newline and comma stay inside the title
        'i2,"He said ""hi""",Comedy\n'  # doubled quotes are one quote
        "i3,Gamma,Drama,extra\n"  # one field too many
        "i4\n"  # too few
    )
    events = tmp_path / "events.csv"  # saved by Excel: a byte-order mark before the header
    events.write_text("\ufeffuser_id,item_id,timestamp\nu1,i1,1700000000\nu1,i2,1700000100\nu1,i3,1700000200,9\n")
    summary = validate(tmp_path, events, items)
    tables = summary["tables"]
    assert tables["items"]["read"] == 4 and tables["items"]["accepted"] == 2
    malformed = "malformed CSV row (field count differs from the header)"
    assert tables["items"]["rejected_by_reason"] == {malformed: 2}
    titles = accepted(tmp_path, "items").set_index("item_id").title
    assert titles["i1"] == "Alpha, the\nsequel" and titles["i2"] == 'He said "hi"'
    assert tables["interactions"]["rejected_by_reason"] == {malformed: 1}
    raw = sorted(json.loads(r)["raw"] for r in rejects(tmp_path).record)
    assert raw == ["i3,Gamma,Drama,extra", "i4", "u1,i3,1700000200,9"]


def test_epochs_in_any_unit_and_implausible_values_never_crash_the_job(tmp_path, spark):
    items = tmp_path / "items.csv"
    items.write_text(ITEMS_CSV)
    events = tmp_path / "events.csv"
    rows = ["u1,i1,1700000100000,4", "u1,i2,1700000100,4", "u2,i1,inf,4", "u2,i2,1e20,4", "u3,i1,1700000100,1e300"]
    events.write_text("user_id,item_id,timestamp,rating\n" + "\n".join(rows) + "\n")
    summary = validate(tmp_path, events, items)
    counts = summary["tables"]["interactions"]
    assert counts["accepted"] == 3 and counts["read"] == 5
    assert counts["rejected_by_reason"] == {"timestamp not finite": 1, "timestamp out of range": 1}
    # an optional value out of range nulls that field, counted; the interaction is kept
    assert counts["nulled_by_reason"] == {"rating out of range [0, 100] (inputs.rules)": 1}
    kept = accepted(tmp_path, "interactions")
    assert (kept.timestamp == pd.Timestamp("2023-11-14T22:15:00Z")).all()  # ms and s: the same moment
    assert kept.rating.isna().sum() == 1

    strict = validate(tmp_path, events, items, timestamp_unit="s")["tables"]["interactions"]["rejected_by_reason"]
    assert strict["timestamp out of range: looks like milliseconds (inputs.rules.timestamp_unit)"] == 1


def test_parquet_ids_must_be_strings_or_integers_and_timestamps_keep_their_instant(tmp_path, spark):
    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": pa.array([7, 8], pa.int64()), "title": ["A", "B"]}), items)
    events = tmp_path / "events.parquet"
    moments = pd.to_datetime(["2024-03-01T10:00:00Z", "2024-03-02T11:30:00.25Z"], format="ISO8601")
    pq.write_table(pa.table({"user_id": ["u1", "u1"], "item_id": [7, 8], "timestamp": moments}), events)
    summary = validate(tmp_path, events, items)
    assert summary["tables"]["interactions"]["accepted"] == 2
    kept = accepted(tmp_path, "interactions").sort_values("timestamp")
    assert kept.item_id.tolist() == ["7", "8"] and kept.timestamp.tolist() == list(moments)

    doubles = tmp_path / "events-double.parquet"
    pq.write_table(pa.table({"user_id": [1.0, 2.0], "item_id": [7, 8], "timestamp": moments}), doubles)
    with pytest.raises(InputSchemaError, match=r"events-double\.parquet.*'user_id' is double.*strings or integers"):
        validate(tmp_path, doubles, items)


def test_empty_and_degenerate_files_get_a_named_error(tmp_path, spark):
    items = csv(tmp_path, "items.csv", ITEMS_CSV)
    with pytest.raises(InputSchemaError, match=r"empty\.csv: no header row"):
        validate(tmp_path, csv(tmp_path, "empty.csv", ""), items)
    with pytest.raises(InputSchemaError, match=r"twice\.csv: the header has the column\(s\) \['item_id'\] more than"):
        validate(
            tmp_path, csv(tmp_path, "twice.csv", "user_id,item_id,timestamp,item_id\nu1,i1,1700000000,i2\n"), items
        )
    (tmp_path / "nothing.parquet").mkdir()
    with pytest.raises(InputSchemaError, match=r"nothing\.parquet: no Parquet data"):
        validate(tmp_path, tmp_path / "nothing.parquet", items)
    with pytest.raises(InputDataError, match=r"header\.csv has no rows"):
        validate(tmp_path, csv(tmp_path, "header.csv", "user_id,item_id,timestamp\n"), items)
    semicolons = csv(tmp_path, "semi.csv", "user_id;item_id;timestamp\nu1;i1;1700000000\n")
    with pytest.raises(InputSchemaError, match=r"semi\.csv.*';'-separated"):
        validate(tmp_path, semicolons, items)
    assert validate(tmp_path, semicolons, items, delimiter=";")["tables"]["interactions"]["accepted"] == 1


def test_every_row_rejected_fails_after_writing_the_rejects_and_says_why(tmp_path, spark):
    items = csv(tmp_path, "items.csv", ITEMS_CSV)
    events = csv(tmp_path, "events.csv", "user_id,item_id,timestamp\nu1,1.0,1700000000\nu1,2.0,1700000100\n")
    with pytest.raises(InputDataError, match=r"events\.csv: every row rejected.*unknown item_id \(2\).*match"):
        validate(tmp_path, events, items)
    assert len(rejects(tmp_path)) == 2  # nothing lost: the rows are aside with their reason
    summary = json.loads(sorted((tmp_path / "data" / "runs").glob("validate-*.json"))[-1].read_text())
    assert summary["tables"]["interactions"]["rejected"] == 2 and summary["warnings"]


def test_columns_we_do_not_know_are_listed_and_can_be_mapped(tmp_path, spark):
    items = csv(tmp_path, "items.csv", "item_id,title,text\ni1,Alpha,a space opera\ni2,Beta,a quiet drama\n")
    events = csv(tmp_path, "events.csv", "user_id,item_id,timestamp\nu1,i1,1700000000\n")
    summary = validate(tmp_path, events, items)
    assert summary["tables"]["items"]["ignored_columns"] == ["text"]
    assert any("items.csv: columns ['text'] are not used" in w for w in summary["warnings"])
    mapped = validate(tmp_path, events, items, item_columns={"description": "text"})
    assert mapped["tables"]["items"]["ignored_columns"] == []
    kept = accepted(tmp_path, "items").set_index("item_id").description
    assert kept["i1"] == "a space opera"  # the item text now reaches the embeddings
    with pytest.raises(InputSchemaError, match=r"items\.csv: columns \['blurb'\] named in the input's `columns`"):
        validate(tmp_path, events, items, item_columns={"description": "blurb"})
