import json

import pandas as pd
import pytest

from profile_features.config import InputRules
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
            ["u1", "i2", "2026-01-01T10:00:00Z", "great"],  # bad rating: nulled, the row kept
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
        None,
        "unknown item_id",
        None,
    ]
    assert out["nulled_reason"].iloc[5] == "unparseable rating" and pd.isna(out["rating"].iloc[5])
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
    assert out.reject_reason.tolist() == [None, "duplicate item_id", "empty title", None]
    assert out.nulled_reason.tolist() == [None, None, None, "unparseable year"]
    assert out.year.iloc[0] == 1999 and pd.isna(out.year.iloc[3])


def test_missing_column_names_file_and_column():
    with pytest.raises(InputSchemaError, match=r"events\.csv.*\['timestamp'\]"):
        require_columns(["user_id", "item_id"], ["user_id", "item_id", "timestamp"], "interactions", "events.csv")


def test_parse_timestamps_forms():
    rules = InputRules(timestamp_min="1970-01-01T00:00:00Z")
    parsed, reasons = parse_timestamps(
        pd.Series(["0", "1970-01-01T00:00:01+00:00", "1970-01-01 00:00:02", "x", None]), rules
    )
    assert parsed.iloc[:3].tolist() == [pd.Timestamp(s, unit="s", tz="UTC") for s in (0, 1, 2)]
    assert parsed.iloc[3:].isna().all()
    assert reasons.tolist() == [None, None, None, "unparseable timestamp", "null timestamp"]
    assert str(parsed.dtype) == "datetime64[us, UTC]"


MOMENT = pd.Timestamp("2023-11-14T22:15:00Z")
IN_UNITS = {"s": "1700000100", "ms": "1700000100000", "us": "1700000100000000", "ns": "1700000100000000000"}


def test_auto_reads_each_epoch_in_the_unit_that_puts_it_in_range():
    parsed, reasons = parse_timestamps(pd.Series(list(IN_UNITS.values()) + ["1700000100.5"]))
    assert reasons.isna().all()
    assert parsed.tolist()[:4] == [MOMENT] * 4
    assert parsed.iloc[4] == MOMENT + pd.Timedelta(milliseconds=500)


def test_a_configured_unit_rejects_other_units_and_says_which_unit_they_look_like():
    parsed, reasons = parse_timestamps(pd.Series(list(IN_UNITS.values())), InputRules(timestamp_unit="s"))
    assert parsed.iloc[0] == MOMENT and parsed.iloc[1:].isna().all()
    assert reasons.iloc[0] is None
    for reason, unit in zip(reasons.iloc[1:], ("milliseconds", "microseconds", "nanoseconds")):
        assert reason.startswith("timestamp out of range") and f"looks like {unit}" in reason


@pytest.mark.parametrize(
    "value, reason",
    [
        ("inf", "timestamp not finite"),
        ("-inf", "timestamp not finite"),
        ("1e400", "timestamp not finite"),
        ("1e20", "timestamp out of range"),
        ("-1700000100", "timestamp out of range"),
        ("0", "timestamp out of range"),  # the usual stand-in for "unknown", not 1970
        ("1850-01-01", "timestamp out of range"),
        ("2150-01-01T00:00:00Z", "timestamp out of range"),
        ("99999-01-01", "unparseable timestamp"),
        ("nan", "null timestamp"),  # a null marker, like NA and null
        ("", "null timestamp"),
    ],
)
def test_implausible_timestamps_are_rejected_with_a_reason_never_converted(value, reason):
    parsed, reasons = parse_timestamps(pd.Series([value]))
    assert reasons.tolist() == [reason] and parsed.isna().all()


def test_a_value_gets_the_same_verdict_whatever_else_is_in_its_batch():
    values = ["1700000100000", "inf", "1e20", "2023-01-01", "1700000100", "junk"]
    alone = [parse_timestamps(pd.Series([v])) for v in values]
    together = parse_timestamps(pd.Series(values))
    assert [r.iloc[0] for _, r in alone] == together[1].tolist()
    assert [t.iloc[0] for t, _ in alone] == together[0].tolist()


def test_ratings_and_years_outside_their_stated_ranges_are_nulled_with_their_reason():
    batch = raw_interactions(
        [["u1", "i1", "1700000000", r] for r in ("4.5", "inf", "1e300", "-99", "1e400", "NaN text", None)]
    ).assign(timestamp=[str(1700000000 + i) for i in range(7)])
    out = classify_interactions(batch, {"i1"})
    assert out.reject_reason.isna().all()  # an optional value never costs the row
    assert out.nulled_reason.tolist() == [
        None,
        "rating not finite",
        "rating out of range [0, 100] (inputs.rules)",
        "rating out of range [0, 100] (inputs.rules)",
        "rating not finite",
        "unparseable rating",
        None,
    ]
    assert out.rating.iloc[0] == 4.5 and out.rating.iloc[1:].isna().all()
    wider = classify_interactions(batch, {"i1"}, InputRules(rating_min=-100, rating_max=1e301))
    assert wider.nulled_reason.iloc[2:4].isna().all()

    items = pd.DataFrame(
        [["i1", "A", "1999"], ["i2", "B", "99999"], ["i3", "C", "-5"], ["i4", "D", "1999.5"], ["i5", "E", "inf"]],
        columns=["item_id", "title", "year"],
    )
    checked = classify_items(items)
    assert checked.reject_reason.isna().all()
    assert checked.nulled_reason.tolist() == [
        None,
        "year out of range [1000, 2100] (inputs.rules)",
        "year out of range [1000, 2100] (inputs.rules)",
        "unparseable year",
        "year not finite",
    ]
    assert checked.year.iloc[0] == 1999 and checked.year.iloc[1:].isna().all()


def test_a_malformed_csv_row_is_rejected_with_its_raw_text():
    batch = raw_interactions([["u1", "i1", "1700000000", "4"], ["u1", "i1", None, None]]).assign(
        _malformed=[None, "u1,i1"]
    )
    out = classify_interactions(batch, {"i1"})
    assert out.reject_reason.tolist() == [None, "malformed CSV row (field count differs from the header)"]
    assert json.loads(out.record.iloc[1]) == {"raw": "u1,i1"}
    assert "_malformed" not in json.loads(out.record.iloc[0])


def test_a_header_with_another_separator_says_so():
    with pytest.raises(InputSchemaError, match=r"';'-separated.*delimiter"):
        require_columns(["user_id;item_id;timestamp"], ["user_id", "item_id", "timestamp"], "interactions", "e.csv")


def test_overlong_ids_and_repeated_columns_are_refused():
    long_id = "u" * 300
    batch = raw_interactions([[long_id, "i1", "1700000000", "4"], ["u1", "i1", "1700000000", "4"]])
    assert classify_interactions(batch, {"i1"}).reject_reason.tolist() == ["id longer than 256 characters", None]
    items = pd.DataFrame([["i" * 257, "A"], ["i2", "B"]], columns=["item_id", "title"])
    assert classify_items(items).reject_reason.tolist() == ["id longer than 256 characters", None]
    with pytest.raises(InputSchemaError, match=r"e\.csv: items input has the column\(s\) \['title'\] more than once"):
        require_columns(["item_id", "title", "title"], ["item_id", "title"], "items", "e.csv")
