import json

import pandas as pd
import pytest

from profile_features.validation import (
    InputSchemaError,
    classify_interactions,
    classify_items,
    parse_timestamps,
    require_columns,
)


def raw_interactions(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]).astype(object)


def test_each_bad_row_gets_its_reason_and_nothing_is_lost():
    batch = raw_interactions(
        [
            ["u1", "i1", "1700000000", "4"],
            ["u1", "i1", "1700000000", "4"],  # duplicate
            [None, "i1", "1700000001", "4"],  # null user
            ["u1", "", "1700000002", "4"],  # null item
            ["u1", "i2", "not a time", "4"],  # bad timestamp
            ["u1", "i2", "2026-01-01T10:00:00Z", "great"],  # bad rating
            ["u1", "i9", "2026-01-01T10:00:00Z", "3"],  # unknown item
            ["u2", "i2", "2026-01-01 10:00:00", None],  # fine, rating optional
        ]
    )
    out = classify_interactions(batch, {"i1", "i2"})
    assert len(out) == len(batch)
    assert out["reject_reason"].tolist() == [
        None,
        "duplicate interaction",
        "null user_id",
        "null item_id",
        "unparseable timestamp",
        "unparseable rating",
        "unknown item_id",
        None,
    ]
    # the raw row is kept as read
    assert json.loads(out["record"].iloc[4])["timestamp"] == "not a time"
    # The Spark stage joins a known-item flag on instead of passing the catalogue: same verdicts,
    # and the flag never leaks into the kept record.
    flagged = batch.assign(_known_item=[True, True, True, None, True, True, None, True])
    joined = classify_interactions(flagged)
    assert joined["reject_reason"].tolist() == out["reject_reason"].tolist()
    assert "_known_item" not in json.loads(joined["record"].iloc[0])
    accepted = out[out.reject_reason.isna()]
    assert accepted.timestamp.tolist() == [
        pd.Timestamp(1700000000, unit="s", tz="UTC"),
        pd.Timestamp("2026-01-01T10:00:00Z"),
    ]


def test_duplicate_choice_does_not_depend_on_row_order():
    rows = [["u1", "i1", "1700000000", "4"], ["u1", "i1", "1700000000", "5"]]
    forward = classify_interactions(raw_interactions(rows), {"i1"})
    backward = classify_interactions(raw_interactions(rows[::-1]), {"i1"})
    kept = lambda out: out.loc[out.reject_reason.isna(), "rating"].tolist()  # noqa: E731
    assert kept(forward) == kept(backward) == [4.0]


def test_items_rules():
    batch = pd.DataFrame(
        [
            ["i1", "A", "Drama", "1999", ""],
            ["i1", "B", "", "", ""],
            ["i2", "", "", "", ""],
            ["i3", "C", "", "19x9", ""],
        ],
        columns=["item_id", "title", "genres", "year", "description"],
    )
    out = classify_items(batch)
    assert out.reject_reason.tolist() == [None, "duplicate item_id", "empty title", "unparseable year"]
    assert out.year.iloc[0] == 1999


def test_missing_column_names_file_and_column():
    with pytest.raises(InputSchemaError, match=r"events\.csv.*\['timestamp'\]"):
        require_columns(["user_id", "item_id"], ["user_id", "item_id", "timestamp"], "interactions", "events.csv")


def test_parse_timestamps_forms():
    parsed = parse_timestamps(pd.Series(["0", "1970-01-01T00:00:01+00:00", "1970-01-01 00:00:02", "x", None]))
    assert parsed.iloc[:3].tolist() == [pd.Timestamp(s, unit="s", tz="UTC") for s in (0, 1, 2)]
    assert parsed.iloc[3:].isna().all()
    assert str(parsed.dtype) == "datetime64[us, UTC]"
