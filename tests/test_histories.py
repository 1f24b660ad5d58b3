import json

import pandas as pd
import pytest

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


@pytest.mark.spark
def test_stats_known_values(spark):
    from profile_features.spark.stats import item_stats, user_stats

    frame = events([("u1", "a", 1, 5), ("u1", "b", 3, 3), ("u2", "a", 4, 1), ("u2", "a", 15, 1), ("u3", "b", 2, 0)])
    frame["rating"] = frame["rating"].astype(float)
    frame.loc[4, "rating"] = float("nan")  # an event without a rating counts, its rating does not
    frame = spark.createDataFrame(frame)
    cutoff = CUTOFF.to_pydatetime()
    users = user_stats(frame, cutoff).toPandas().set_index("user_id")
    assert users.loc["u1", "user_interaction_count"] == 2
    assert users.loc["u1", "user_mean_rating"] == 4.0
    assert users.loc["u1", "user_days_active"] == 8.0
    assert users.loc["u3", "user_interaction_count"] == 1 and pd.isna(users.loc["u3", "user_mean_rating"])
    assert (users.event_timestamp.dt.tz_localize(None) == CUTOFF.tz_localize(None)).all()
    items = item_stats(frame, cutoff).toPandas().set_index("item_id")
    assert items.loc["a", "item_interaction_count"] == 2  # the day-15 event is after the cutoff
    assert items.loc["a", "item_mean_rating"] == 3.0
    assert items.loc["b", "item_interaction_count"] == 2 and items.loc["b", "item_mean_rating"] == 3.0
    late = spark.createDataFrame(events([("u9", "c", 20, 4)]))
    assert user_stats(late, cutoff).count() == 0 and item_stats(late, cutoff).count() == 0
