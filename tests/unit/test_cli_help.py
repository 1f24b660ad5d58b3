"""`profile-features --help` and every subcommand's: each option says what it does and its default."""

import argparse
import importlib

import pytest

from profile_features.cli import build_parser, main
from tests.support.repo import REPO_ROOT

ENTRY_FILES = REPO_ROOT / "spark_jobs"


def subparsers(parser):
    """(name, parser) of `parser` and every subcommand below it."""
    found = [("profile-features", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"profile-features {name}", sub)]
    return found


def options(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def test_top_level_help_describes_the_tool_and_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "The `profile-features` command." not in text
    assert "LLM user profiles" in text and "Feast" in text
    for command in ("demo", "materialize", "evaluate", "drift-report", "refresh-plan"):
        assert f"\n  {command} " in text, command


@pytest.mark.parametrize("name", [name for name, _ in subparsers(build_parser())])
def test_every_option_has_help_and_a_default(name):
    assert_documented(name, dict(subparsers(build_parser()))[name])


class _Captured(Exception):
    pass


@pytest.mark.parametrize("entry", sorted(p.stem for p in ENTRY_FILES.glob("*.py") if p.stem != "__init__"))
def test_every_spark_job_option_has_help_and_a_default(entry, monkeypatch):
    """The spark-submit entry files build their parsers inside main(): catch the parser as it parses."""
    module = importlib.import_module(f"profile_features.spark_jobs.{entry}")
    seen = []

    def capture(self, *args, **kwargs):
        seen.append(self)
        raise _Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    with pytest.raises(_Captured):
        module.main([])
    assert_documented(f"spark_jobs/{entry}.py", seen[0])
    assert "--summary-json" in seen[0].format_help()


def assert_documented(name, parser):
    assert parser.description, f"{name} has no description"
    formatter = parser._get_formatter()
    missing_help, missing_default = [], []
    for action in options(parser):
        label = "/".join(action.option_strings) or action.dest
        if not (action.help or "").strip():
            missing_help.append(label)
            continue
        takes_value = action.nargs != 0 and action.option_strings and not action.required
        shown = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
        if takes_value and "default" not in shown and "required" not in shown:
            missing_default.append(label)
    assert not missing_help, f"{name}: options without help: {missing_help}"
    assert not missing_default, f"{name}: options whose help shows no default: {missing_default}"
    parser.format_help()  # renders (a bad % in a help text would raise here)


def test_defaults_are_shown_in_the_rendered_help():
    parser = dict(subparsers(build_parser()))["profile-features evaluate"]
    text = " ".join(parser.format_help().split())
    assert "training seeds per model and column set (default: 3)" in text
    assert "(default: work/evaluate-<dataset or config name>)" in text
    materialize = " ".join(dict(subparsers(build_parser()))["profile-features materialize"].format_help().split())
    assert "--reload" in materialize and "(default: feature_repo)" in materialize


def test_materialize_start_and_reload_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["materialize", "--reload", "--start", "2026-01-01"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
