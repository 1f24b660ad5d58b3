"""The import contract: what a ranking team installs stays a feature-store plugin, and the folders'
dependencies point one way. The figures come from `benchmarks/architecture.py` (run as a program, so
tests and benchmarks do not import each other)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def architecture():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "architecture.py")], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_the_plugin_imports_no_trainer_and_no_torch():
    """Importing the plugin's modules (definitions, pipeline, evaluation, CLI) loads neither the two-tower
    trainer nor torch: both come in only when an evaluation or the student runs."""
    modules = [
        "profile_features",
        "profile_features.feast",
        "profile_features.pipeline",
        "profile_features.cli",
        "profile_features.evaluation.run",
        "profile_features.evaluation.report",
        "profile_features.evaluation.gbdt",
    ]
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('torch', 'tests') or m.startswith('profile_features.evaluation.rankers')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_test_doubles_live_outside_the_package():
    sources = {p.relative_to(REPO): p.read_text() for p in (REPO / "profile_features").rglob("*.py")}
    for path, text in sources.items():
        assert "class FakeOpenAIServer" not in text and "def append_event_to_histories" not in text, path


def test_folders_import_each_other_one_way(architecture):
    """No import cycle between the package's folders (function-level imports count: a lazy import is a
    dependency too)."""
    assert architecture["folder_import_loops"] == []


def test_every_table_path_comes_from_the_catalogue(architecture):
    """No `run_date=` path is spelled outside profile_features/catalogue.py."""
    assert architecture["run_date_spellings_outside_catalogue"] == 0


def test_the_wheel_installs_no_generic_top_level_name(architecture):
    """`rankers` was one; `student` and `spark_jobs` remain (issue 34: to be installed under profile_features)."""
    assert "rankers" not in architecture["installed_top_level_packages"]
    assert architecture["installed_top_level_packages"][0] == "profile_features"
