"""Histories and item stats built by Spark: the same bytes as the pandas build, stats by hand."""

import pandas as pd
import pytest

from profile_features.histories import build_histories
from tests.unit.test_histories import CUTOFF, awkward_events, events


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


@pytest.mark.spark
def test_spark_histories_write_the_pandas_bytes(spark):
    from profile_features.spark.histories import history_rows

    frame = awkward_events()
    cutoff = CUTOFF.to_pydatetime()
    expected = build_histories(frame, cutoff, 4).set_index("user_id")
    got = history_rows(spark.createDataFrame(frame), cutoff, 4).toPandas().set_index("user_id")
    assert sorted(got.index) == sorted(expected.index) == ["u1", "u2"]
    for user in expected.index:
        assert got.loc[user, "history_json"] == expected.loc[user, "history_json"]
        assert got.loc[user, "history_hash"] == expected.loc[user, "history_hash"]
        assert list(got.loc[user, "item_ids"]) == expected.loc[user, "item_ids"]
        assert got.loc[user, "history_length"] == expected.loc[user, "history_length"]
        assert pd.Timestamp(got.loc[user, "last_interaction_at"], tz="UTC") == expected.loc[user, "last_interaction_at"]
