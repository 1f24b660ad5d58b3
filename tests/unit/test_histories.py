import json

import pandas as pd

from profile_features.histories import build_histories

CUTOFF = pd.Timestamp("2026-01-10", tz="UTC")


def events(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day", "rating"])
    frame["timestamp"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(frame.pop("day"), unit="D")
    frame["event_type"] = "rating"
    frame["title"] = "Title " + frame["item_id"]
    frame["genres"] = "Drama|Comedy"
    frame["year"] = 1999
    frame["description"] = "desc"
    return frame


def test_last_n_strictly_before_cutoff_in_time_order():
    frame = events(
        [
            ("u1", "a", 1, 5),
            ("u1", "b", 3, 4),
            ("u1", "c", 2, 3),
            ("u1", "late", 8, 1),
            ("u1", "at", 9, 1),
            ("u2", "z", 0, 2),
        ]
    )
    frame.loc[frame.item_id == "at", "timestamp"] = CUTOFF  # at the cutoff: not history yet
    out = build_histories(frame, CUTOFF.to_pydatetime(), max_length=3).set_index("user_id")
    assert out.loc["u1", "item_ids"] == ["c", "b", "late"]
    assert out.loc["u1", "history_length"] == 3
    assert out.loc["u1", "last_interaction_at"] == pd.Timestamp("2026-01-09", tz="UTC")
    assert out.loc["u1", "event_timestamp"] == CUTOFF
    history = json.loads(out.loc["u1", "history_json"])
    assert [e["title"] for e in history] == ["Title c", "Title b", "Title late"]
    assert history[0]["genres"] == ["Drama", "Comedy"] and history[0]["year"] == 1999
    assert out.loc["u2", "item_ids"] == ["z"]


def test_user_without_history_before_cutoff_has_no_row():
    frame = events([("u1", "a", 20, 5)])
    assert build_histories(frame, CUTOFF.to_pydatetime(), 5).empty


def test_hash_is_stable_and_tracks_content():
    frame = events([("u1", "a", 1, 5), ("u1", "b", 2, 4)])
    h1 = build_histories(frame, CUTOFF.to_pydatetime(), 5).history_hash.iloc[0]
    h2 = build_histories(frame.sample(frac=1, random_state=0), CUTOFF.to_pydatetime(), 5).history_hash.iloc[0]
    changed = frame.copy()
    changed.loc[0, "rating"] = 1
    h3 = build_histories(changed, CUTOFF.to_pydatetime(), 5).history_hash.iloc[0]
    retitled = frame.copy()
    retitled.loc[0, "title"] = "Renamed"
    h4 = build_histories(retitled, CUTOFF.to_pydatetime(), 5).history_hash.iloc[0]
    assert h1 == h2 and len({h1, h3, h4}) == 3


def test_naive_spark_timestamps_are_taken_as_utc():
    frame = events([("u1", "a", 1, 5)])
    frame["timestamp"] = frame["timestamp"].dt.tz_localize(None).astype("datetime64[ns]")
    out = build_histories(frame, CUTOFF.to_pydatetime(), 5)
    assert out.last_interaction_at.iloc[0] == pd.Timestamp("2026-01-02", tz="UTC")


def awkward_events() -> pd.DataFrame:
    """Ties on (timestamp, item), missing and NaN values, escapes, non-ASCII, sub-second and large values."""
    ts = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [
        ("u1", "a", ts, 5.0, "rating", "Tïtle “x”", "Drama||Comedy|", 1999, None),
        ("u1", "b", ts, float("nan"), "rating", None, None, None, 'd\\e"sc\nline\ttab'),
        ("u1", "a", ts, 3.0, "rating", "Tïtle “x”", "Drama||Comedy|", 1999, None),
        ("u1", "c", ts + pd.Timedelta(microseconds=1234), 0.001, "click", "日本", "", 2001, "x"),
        ("u1", "d", ts + pd.Timedelta(days=1), 1e6, "view", "t", "A", None, ""),
        ("u2", "z", ts, 2.5, "rating", "emoji 🎬", "A|B", 1980, "ctl\x01char"),
        ("u2", "y", ts + pd.Timedelta(days=20), 2.5, "rating", "late", "A|B", 1980, ""),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating", "event_type", *ITEM_TEXT])
    return frame.astype({"year": "Int64"})


ITEM_TEXT = ["title", "genres", "year", "description"]


def test_ties_are_ordered_by_content_not_input_order():
    frame = awkward_events()
    first = build_histories(frame, CUTOFF.to_pydatetime(), 4)
    shuffled = build_histories(frame.iloc[::-1], CUTOFF.to_pydatetime(), 4)
    assert first.history_hash.tolist() == shuffled.history_hash.tolist()
    u1 = first.set_index("user_id").loc["u1"]
    # Of the two same-time events on "a", the one whose JSON sorts first is the older, and drops out first.
    assert u1["item_ids"] == ["a", "b", "c", "d"]
    assert [e["rating"] for e in json.loads(u1["history_json"])][:2] == [5.0, None]
