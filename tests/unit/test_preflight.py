"""User errors found in the first seconds, before Spark reads a row: the inputs' paths, headers and
column mappings, the data_dir's host, missing extras (a URI scheme's filesystem connector: tests/integration).
Each ends as one line that names the file, the field or the fix."""

from __future__ import annotations

import pandas as pd
import pytest

from profile_features import storage
from profile_features.config import InputsConfig, load_config
from profile_features.spark.preflight import Needs, PreflightError, check_before_spark, missing_extras
from profile_features.validation import InputSchemaError, local_header, preflight_inputs

ITEMS = "item_id,title,genres\ni1,Alpha,Drama\n"
EVENTS = "user_id,item_id,timestamp\nu1,i1,1767225600\n"


def inputs(interactions, items, **item_columns) -> InputsConfig:
    return InputsConfig(interactions={"path": str(interactions)}, items={"path": str(items), "columns": item_columns})


def files(tmp_path, events: str = EVENTS, items: str = ITEMS):
    (tmp_path / "events.csv").write_text(events)
    (tmp_path / "items.csv").write_text(items)
    return tmp_path / "events.csv", tmp_path / "items.csv"


def test_good_inputs_pass_and_headers_read_like_the_stage(tmp_path):
    events, items = files(tmp_path, items="\ufeffasin , title\ni1,Alpha\n")  # Excel's BOM, a padded name
    preflight_inputs(inputs(events, items, item_id="asin"), local_header)
    folder = tmp_path / "parquet" / "run_date=2026-01-01"
    folder.mkdir(parents=True)
    pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}).to_parquet(folder / "part-0.parquet")
    (tmp_path / "parquet" / "_SUCCESS").write_text("")
    table = InputsConfig(interactions={"path": str(tmp_path / "parquet")}, items={"path": str(items)}).interactions
    assert local_header(table) == ["user_id", "item_id", "run_date"]  # partition columns, as Spark reads them


def test_missing_files_are_named_together_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        preflight_inputs(inputs(tmp_path / "nope.csv", tmp_path / "gone.parquet"), local_header)
    message = str(err.value)
    assert "gone.parquet: items input not found" in message and "nope.csv: interactions input not found" in message
    assert "\n" not in message


def test_a_wrong_mapping_and_a_missing_column_are_reported_before_any_row_is_read(tmp_path):
    events, items = files(tmp_path, events="user,item_id,timestamp\nu1,i1,0\n")
    with pytest.raises(InputSchemaError) as err:
        preflight_inputs(inputs(events, items, description="blurb"), local_header)
    message = str(err.value)
    assert "items.csv: columns ['blurb'] named in the input's `columns` mapping are not in the file" in message
    assert "events.csv: interactions input is missing required column(s) ['user_id']" in message
    assert "\n" not in message


def test_an_empty_file_and_a_semicolon_header_say_why(tmp_path):
    events, items = files(tmp_path, events="user_id;item_id;timestamp\nu1;i1;0\n", items="")
    with pytest.raises(InputSchemaError) as err:
        preflight_inputs(inputs(events, items), local_header)
    assert "items input has no header row" in str(err.value)
    assert "';'-separated: set the input's `delimiter`" in str(err.value)


def test_check_before_spark_runs_the_input_checks_only_for_stages_that_read_inputs(tmp_path):
    events, items = files(tmp_path)
    config = load_config(
        None,
        [
            f"data_dir={tmp_path / 'data'}",
            f"inputs.interactions.path={tmp_path / 'x.csv'}",
            f"inputs.items.path={items}",
        ],
    )
    check_before_spark(config, Needs())  # histories etc. never read the raw inputs
    with pytest.raises(FileNotFoundError, match=r"x\.csv: interactions input not found"):
        check_before_spark(config, Needs(inputs=True))


def test_a_host_that_does_not_resolve_fails_in_seconds_naming_the_host():
    import time

    started = time.monotonic()
    with pytest.raises(storage.StorageUnreachable, match=r"'namenode\.invalid' \(from the URI\) does not resolve"):
        storage.check_reachable("hdfs://namenode.invalid:8020/pf", what="data_dir")
    assert time.monotonic() - started < 10
    storage.check_reachable("s3a://bucket/pf")  # a bucket is not a host: nothing to resolve here
    storage.check_reachable("hdfs:///pf")  # fs.defaultFS's namenode


def test_a_data_dir_that_cannot_be_written_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(storage.StorageUnreachable, match="cannot write under"):
        storage.check_reachable(str(blocker / "data"), what="data_dir")
    storage.check_reachable(str(tmp_path / "new" / "data"), what="data_dir")  # created on first write


def test_missing_extras_name_the_install_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    config = load_config(None)
    assert missing_extras(config, Needs(torch=True)) == ["torch"]
    assert missing_extras(load_config(None, ["student.enabled=false"]), Needs(torch=True)) == []
    with pytest.raises(PreflightError, match=r"needs \['torch'\].*pip install 'profile-features\[torch\]'"):
        check_before_spark(config, Needs(torch=True))
