"""Erasure in user-keyed files outside data_dir (refresh plans, refresh lists, exports): only the
forgotten users' rows go, every other row is kept exactly, and a bad file is refused before any work."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profile_features.erasure.outside import check_file, forget_in_file


def test_parquet_file_loses_only_the_forgotten_users_rows_across_batches(tmp_path, monkeypatch):
    import profile_features.erasure.outside as outside

    monkeypatch.setattr(outside, "_BATCH_ROWS", 3)  # several batches: the filter must hold across them
    users = [f"u{i % 4}" for i in range(10)] + [None]
    table = pa.table({"user_id": users, "score": [float(i) for i in range(11)], "reason": ["r"] * 11})
    path = tmp_path / "plan.parquet"
    pq.write_table(table, path)
    assert forget_in_file(str(path), ["u1", "u3"]) == 5
    after = pq.read_table(path)
    assert after.schema == table.schema
    kept = [row for row in table.to_pylist() if row["user_id"] not in ("u1", "u3")]
    assert after.to_pylist() == kept  # order, nulls and every other column as they were
    assert forget_in_file(str(path), ["u1"]) == 0 and pq.read_table(path).equals(after)  # nothing left to do


def test_numeric_user_ids_match_as_text(tmp_path):
    path = tmp_path / "plan.parquet"
    pd.DataFrame({"user_id": [16, 160, 7]}).to_parquet(path, index=False)
    assert forget_in_file(str(path), ["16"]) == 1
    assert pd.read_parquet(path).user_id.tolist() == [160, 7]


def test_csv_keeps_other_rows_as_text(tmp_path):
    path = tmp_path / "refresh.csv"
    rows = ["user_id,note,score", '007,"kept, with a comma",1.50', "alice,gone,2", " 042 ,padded,3"]
    rows.append('bob,"multi\nline",4')
    path.write_text("\n".join(rows) + "\n")
    assert forget_in_file(str(path), ["alice", "042"]) == 2
    # values are copied, never re-parsed: the leading zeros and 1.50 stay
    assert path.read_bytes() == b'user_id,note,score\n007,"kept, with a comma",1.50\nbob,"multi\nline",4\n'


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("plan.json", "{}", "a .parquet or .csv file"),
        ("plan.csv", "customer,score\nalice,1\n", "no user_id column"),
        ("missing.parquet", None, "no such file"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as raised:
        check_file(str(path))
    assert str(path) in str(raised.value)


def test_the_jobs_refresh_list_is_always_among_the_files(tmp_path):
    from profile_features.config import JobConfig
    from profile_features.erasure.forget import _outside_files

    refresh, plan = tmp_path / "refresh.csv", tmp_path / "plan.parquet"
    refresh.write_text("user_id\nalice\n")
    job = JobConfig.model_validate({"data_dir": str(tmp_path / "data"), "profile": {"only_users": str(refresh)}})
    assert _outside_files(job, [plan]) == [str(plan), str(refresh)]
    assert _outside_files(job, [refresh]) == [str(refresh)]  # named once
    gone = job.model_copy(update={"profile": job.profile.model_copy(update={"only_users": str(tmp_path / "no.csv")})})
    assert _outside_files(gone, []) == []  # a list since removed is nobody's data
