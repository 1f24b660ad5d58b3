"""What a ranking team installs into its Feast repo stays a feature-store plugin: no trainers, no test doubles."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_plugin_imports_no_trainer_and_no_torch():
    """Importing the plugin's modules (definitions, pipeline, evaluation, CLI) loads neither the two-tower
    trainer (package `rankers`) nor torch: both come in only when an evaluation or the student runs."""
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
    code += "('rankers', 'torch', 'tests')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert loaded.stdout.strip() == "[]", loaded.stdout


def test_trainers_and_test_doubles_live_outside_the_package():
    package = REPO / "profile_features"
    assert not (package / "evaluation" / "two_tower.py").exists() and (REPO / "rankers" / "two_tower.py").exists()
    sources = {p.relative_to(REPO): p.read_text() for p in package.rglob("*.py")}
    for path, text in sources.items():
        assert "class FakeOpenAIServer" not in text and "def append_event_to_histories" not in text, path
