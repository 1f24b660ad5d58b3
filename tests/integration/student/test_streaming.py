"""The Spark side of streamed student training: one time-ordered row per user, and staging files
that depend on the users alone (the training itself: tests/unit/student/test_streaming.py)."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.mark.spark
def test_spark_writes_one_time_ordered_row_per_user_with_its_profile(spark):
    from profile_features.spark.student_job import training_users

    events = spark.createDataFrame(
        pd.DataFrame(
            {
                "user_id": ["a", "a", "a", "b", "c"],
                "item_id": ["x", "y", "z", "x", "y"],
                "timestamp": pd.to_datetime([3, 1, 2, 5, 4], unit="D", utc=True),
            }
        )
    )
    profiles = spark.createDataFrame(
        pd.DataFrame({"user_id": ["a", "d"], "profile_embedding": [[1.0, 2.0], [3.0, 4.0]]})
    )
    rows = training_users(events, profiles).toPandas().set_index("user_id").sort_index()
    assert list(rows.index) == ["a", "b", "c"]  # a profile without interactions trains nothing
    assert [list(v) for v in rows.item_ids] == [["y", "z", "x"], ["x"], ["y"]]
    day = 86_400 * 10**6  # item_times: epoch microseconds, aligned with item_ids
    assert [list(v) for v in rows.item_times] == [[day, 2 * day, 3 * day], [5 * day], [4 * day]]
    assert list(rows.profile_embedding["a"]) == [1.0, 2.0] and rows.profile_embedding["b"] is None


@pytest.mark.spark
def test_training_files_depend_on_the_users_alone_not_on_the_input_partitioning(spark, tmp_path, monkeypatch):
    """The cluster run and the local run must train on the same chunks in the same order: the staging
    files are hash buckets sorted by user id, whatever partitions the input arrived in."""
    import pyarrow.dataset as ds

    from profile_features.spark import student_job

    monkeypatch.setattr(student_job, "USERS_PER_FILE", 7)  # 50 users -> 8 buckets
    frame = pd.DataFrame({"user_id": [f"u{i:02d}" for i in range(50)], "item_ids": [[f"i{i}"] for i in range(50)]})
    layouts = []
    for parts in (1, 5):
        users = spark.createDataFrame(frame.sample(frac=1.0, random_state=parts)).repartition(parts)
        path = str(tmp_path / f"parts{parts}")
        assert student_job.write_training_users(users, path) == 50
        fragments = sorted(ds.dataset(path, format="parquet").get_fragments(), key=lambda f: f.path)
        layouts.append([f.to_table(columns=["user_id"]).column("user_id").to_pylist() for f in fragments])
    assert layouts[0] == layouts[1]
    assert 2 <= len(layouts[0]) <= 8 and sorted(sum(layouts[0], [])) == sorted(frame.user_id)
    assert all(ids == sorted(ids) for ids in layouts[0])
