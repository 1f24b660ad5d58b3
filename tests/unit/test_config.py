import pytest

from profile_features.config import load_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("data_dir: /data\nhistory:\n  max_length: 20\n")
    config = load_config(path, ["history.cutoff=2026-05-01T00:00:00Z", "embedding.batch_size=8"])
    assert config.data_dir == "/data"
    assert config.history.max_length == 20
    assert config.history.cutoff.isoformat() == "2026-05-01T00:00:00+00:00"
    assert config.embedding.batch_size == 8


def test_unknown_key_names_the_file_and_field(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("history:\n  max_lenght: 20\n")
    with pytest.raises(ValueError, match=r"(?s)job\.yaml.*history\.max_lenght"):
        load_config(path)


def test_config_is_frozen():
    config = load_config(None)
    with pytest.raises(Exception):
        config.history.max_length = 3


def test_naive_cutoff_is_utc():
    config = load_config(None, ["history.cutoff=2026-05-01T12:00:00"])
    assert config.history.cutoff.utcoffset().total_seconds() == 0


def test_the_cli_tells_its_version(capsys):
    import pytest

    from profile_features import __version__
    from profile_features.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"profile-features {__version__}"


def test_demo_makes_a_new_folder_a_repo_and_refuses_a_foreign_one(tmp_path, capsys):
    from profile_features.cli import main
    from profile_features.demo import ensure_repo
    from profile_features.feast.settings import load_feast_settings

    fresh = ensure_repo(tmp_path / "new" / "repo")
    assert (fresh / "profile_features.yaml").exists() and (fresh / "features.py").exists()
    assert load_feast_settings(fresh / "profile_features.yaml").data_dir == str(fresh / "data")
    assert ensure_repo(fresh) == fresh  # a repo is used as it is
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["demo", "--repo", str(foreign)]) == 2
    assert "not a profile-features feature repo" in capsys.readouterr().err


def test_the_shipped_job_config_loads_with_the_defaults_it_shows():
    from pathlib import Path

    from profile_features.config import InputRules, JobConfig, load_config

    config = load_config(str(Path(__file__).resolve().parents[2] / "configs" / "job.yaml"))
    assert config.inputs.rules == InputRules()  # the commented values are the defaults
    defaults = JobConfig(data_dir=config.data_dir, inputs=config.inputs)
    assert config.history == defaults.history and config.semantic == defaults.semantic
    assert config.embedding == defaults.embedding and config.spark == defaults.spark


def test_set_under_a_mapping_keeps_the_rest_of_the_key_whole(tmp_path):
    """`--set spark.conf.spark.driver.memory=1g` is the Spark option `spark.driver.memory`, not a nested key."""
    path = tmp_path / "job.yaml"
    path.write_text("inputs:\n  interactions: {path: e.csv}\n  items: {path: i.csv}\nspark:\n  conf: {spark.a.b: x}\n")
    config = load_config(
        path,
        [
            "spark.conf.spark.driver.memory=1g",
            "spark.conf.spark.sql.shuffle.partitions=4",  # stays the text "4": Spark options are strings
            "inputs.items.columns.description=blurb.text",
            "spark.master=local[2]",
        ],
    )
    assert config.spark.conf == {"spark.a.b": "x", "spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "4"}
    assert config.inputs.items.columns == {"description": "blurb.text"}
    assert config.spark.master == "local[2]"
    assert load_config(None, ["spark.conf={spark.x: 1, spark.y: true}"]).spark.conf == {
        "spark.x": "1",
        "spark.y": "true",
    }


def test_config_errors_are_one_line_naming_the_file_and_every_field(tmp_path):
    from profile_features.config import ConfigError

    path = tmp_path / "job.yaml"
    path.write_text("history:\n  max_lenght: 20\nembedding:\n  batch_size: -1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert (
        "history.max_lenght: unknown key" in message
        and "embedding.batch_size: Input should be greater than 0" in message
    )
    with pytest.raises(ConfigError, match="not of the form dotted.key=value"):
        load_config(None, ["history.max_length"])
    with pytest.raises(ConfigError, match="'max_length' is not a mapping"):
        load_config(None, ["history.max_length=3", "history.max_length.x=1"])
