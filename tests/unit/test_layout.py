"""The import contract: what a ranking team installs stays a feature-store plugin, and the folders'
dependencies point one way. The figures come from `benchmarks/architecture.py` (run as a program, so
tests and benchmarks do not import each other)."""

import json
import subprocess
import sys

import pytest

from tests.support.repo import REPO_ROOT as REPO


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


def test_the_wheel_installs_one_name(architecture):
    """`student/` and `spark_jobs/` are installed as profile_features.student / .spark_jobs: no generic name
    (`student`, `spark_jobs`, `rankers` once) lands in a user's site-packages, and no package imports loop."""
    assert architecture["installed_top_level_packages"] == ["profile_features"]
    assert architecture["package_import_loops"] == []


def test_setup_cfg_lists_every_package_folder():
    """setup.cfg lists the packages (find: cannot see the mapped folders): a new sub-package must be listed,
    or the wheel would ship without it."""
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = set(config.get("options", "packages").split())
    mapped = {
        b.strip(): a.strip()
        for a, _, b in (x.partition("=") for x in config.get("options", "package_dir").split("\n") if "=" in x)
    }
    found = set()
    for init in [
        *REPO.glob("profile_features/**/__init__.py"),
        *REPO.glob("student/**/__init__.py"),
        *REPO.glob("spark_jobs/**/__init__.py"),
    ]:
        parts = init.parent.relative_to(REPO).parts
        found.add(".".join([*mapped.get(parts[0], parts[0]).split("."), *parts[1:]]))
    assert listed == found


def test_the_shipped_zip_imports_the_student_where_the_code_does(tmp_path):
    """`python -m profile_features.packaging` (the README's cluster zip) puts student/ at its import path: a
    Python that sees only the zip imports profile_features.student and the entry files from it."""
    package = tmp_path / "profile_features.zip"
    subprocess.run([sys.executable, "-m", "profile_features.packaging", str(package)], cwd=REPO, check=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')];"
        "import profile_features.student.config as c, profile_features.spark_jobs.build_histories as b;"
        "print(c.__file__); print(b.__file__)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(package)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        f"{package}/profile_features/student/config.py",
        f"{package}/profile_features/spark_jobs/build_histories.py",
    ]
