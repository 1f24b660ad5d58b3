"""Regression tests of issue 33 through the pandas functions the Spark validation stage wraps: one identity
per id, one reading per timestamp, text that is not what it seems (the stage itself: tests/integration)."""

from __future__ import annotations

import pandas as pd
import pytest

from profile_features.config import InputRules
from profile_features.validation import check_item_rows, classify_interactions, classify_items
from profile_features.validation_rules import is_empty_text, normalize_ids, parse_timestamps

# Every one of these is one id "i1" (no-break, em, ideographic spaces, zero-width space, BOM, tab, bidi mark).
SAME_ID = ["i1", " i1", "i1\u00a0", "\u2003i1", "i1\u3000", "\u200bi1", "\ufeffi1", "i1\t", "\u200ei1"]


def test_one_normalisation_of_ids_strips_invisible_edges_and_keeps_case_and_inside():
    assert normalize_ids(pd.Series(SAME_ID)).unique().tolist() == ["i1"]
    assert normalize_ids(pd.Series(["I1", "i 1", "i\u00a01"])).tolist() == ["I1", "i 1", "i\u00a01"]


def test_ids_equal_after_normalisation_are_duplicates_before_any_other_decision():
    items = pd.DataFrame({"item_id": SAME_ID, "title": [f"t{n}" for n in range(len(SAME_ID))]})
    out = classify_items(items)
    assert out.reject_reason.isna().sum() == 1 and set(out.reject_reason.dropna()) == {"duplicate item_id"}
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1\u2003", "\u00a0u1"],
            "item_id": ["i1", "\u200bi1", "i1 "],
            "timestamp": ["1700000000"] * 3,
        }
    )
    verdicts = classify_interactions(events, {"i1 "}).reject_reason.tolist()
    assert verdicts.count(None) == 1 and verdicts.count("duplicate interaction") == 2


@pytest.mark.parametrize(
    "value",
    [
        "now",
        "today",
        "yesterday",
        "tomorrow",
        "12/01/2023",
        "01/12/2023",
        "2023-11-14 22:15 PST",
        "Nov 14 2023",
        "2023-11-14T22:15:00 EST",
        "1_700_000_000",
        "2023-02-30",
        "2023-11-14T24:00:00",
    ],
)
def test_only_the_documented_time_forms_are_read(value):
    parsed, reasons = parse_timestamps(pd.Series([value]))
    assert reasons.tolist() == ["unparseable timestamp"] and parsed.isna().all()


def test_iso_forms_with_offsets_and_epoch_forms_read_one_instant():
    forms = [
        "2023-11-14T22:15:00Z",
        "2023-11-14 23:15:00+01:00",
        "2023-11-14T17:15-0500",
        "2023-11-14T22:15:00",
        "1700000100",
        "1700000100000",
        "1700000100000000",
        "1700000100000000999",
    ]
    parsed, reasons = parse_timestamps(pd.Series(forms))
    assert reasons.isna().all() and set(parsed) == {pd.Timestamp("2023-11-14T22:15:00Z")}


def test_a_sub_microsecond_value_reads_the_same_alone_and_in_any_batch():
    values = ["1700000100123456789", "2023-11-14T22:15:00.123456789Z", "1700000100.1234567"]
    together, _ = parse_timestamps(pd.Series(values + ["1.5", "junk"]))
    for i, value in enumerate(values):
        alone, _ = parse_timestamps(pd.Series([value]))
        assert alone.iloc[0] == together.iloc[i]
    assert together.iloc[0] == together.iloc[1] == pd.Timestamp("2023-11-14T22:15:00.123456Z")


def test_an_out_of_range_instant_gets_one_reason_in_every_form():
    forms = ["1850-01-01", "1850-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59Z", "-3786825600", "4102444800"]
    _, reasons = parse_timestamps(pd.Series(forms), InputRules(timestamp_unit="s"))
    assert set(reasons) == {"timestamp out of range"}
    _, auto = parse_timestamps(pd.Series(["1850-01-01", "-3786825600"]))
    assert set(auto) == {"timestamp out of range"}


def test_null_markers_and_bad_optional_values_null_the_field_and_keep_the_item():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "e"],
            "title": ["A", "B", "C", "\u200b\u00a0 ", "E"],
            "year": ["NA", "abc", "1999", "2000", "N/A"],
            "genres": ["null", "-", "Rock", "", "None"],
        }
    )
    out = check_item_rows(items)
    assert out.reject_reason.tolist() == [None, None, None, "empty title", None]
    assert out.nulled_reason.tolist() == [None, "unparseable year", None, None, None]
    assert out.year.tolist()[:3] == [pd.NA, pd.NA, 1999] and out.genres.tolist()[:3] == ["", "", "Rock"]
    assert is_empty_text(pd.Series(["\u200b", "\u202e", " a "])).tolist() == [True, True, False]


def test_the_strip_set_and_the_regex_spark_uses_name_the_same_characters():
    import re

    from profile_features.validation_rules import ID_EDGES, INVISIBLE_CHARS

    bmp = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    by_regex = {c for c in bmp if re.sub(ID_EDGES, "", f"{c}x{c}") == "x"}
    assert by_regex == set(INVISIBLE_CHARS)
    assert set(" \t\n\r\u00a0\u2003\u3000\u200b\u200e\u202e\ufeff") <= by_regex and "x" not in by_regex
