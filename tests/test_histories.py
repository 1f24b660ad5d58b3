import json

import pandas as pd

from profile_features.histories import build_histories, item_stats, user_stats

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


def test_stats_known_values():
    frame = events([("u1", "a", 1, 5), ("u1", "b", 3, 3), ("u2", "a", 4, 1), ("u2", "a", 15, 1)])
    users = user_stats(frame, CUTOFF.to_pydatetime()).set_index("user_id")
    assert users.loc["u1", "user_interaction_count"] == 2
    assert users.loc["u1", "user_mean_rating"] == 4.0
    assert users.loc["u1", "user_days_active"] == 8.0
    items = item_stats(frame, CUTOFF.to_pydatetime()).set_index("item_id")
    assert items.loc["a", "item_interaction_count"] == 2  # the day-15 event is after the cutoff
    assert items.loc["a", "item_mean_rating"] == 3.0
