"""`profile-features demo` end to end, as a new user runs it (small sizes, temporary repo)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from profile_features.config import SampleConfig
from profile_features.pipeline import prepare_repo
from tests.support.repo import REPO_ROOT


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_the_default_demo_runs_every_stage_and_serves_a_trained_student(tmp_path):
    """`profile-features demo` at its default size, as a new user runs it. One run checks every stage's output
    (it used to be a second run at 30 users, ~150 s of CI for the same code path) and the deployment guard:
    at the default size it has enough validation users to ship the trained student (with 300 users it could
    not, and the demo served the popularity prior with a warning)."""
    repo = prepare_repo(REPO_ROOT / "feature_repo", tmp_path / "repo")
    cli = Path(sys.executable).with_name("profile-features")
    result = subprocess.run(
        [str(cli), "demo", "--repo", str(repo), "--master", "local[2]"], capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out, logged = result.stdout, result.stderr  # stage progress is logged (stderr); results are printed
    for noise in ("Traceback", "Py4JNetworkError", "ConnectionResetError"):  # a successful run shows none
        assert noise not in logged, logged[max(0, logged.find(noise) - 2000) :][:4000]
    counts = re.search(r"interactions: read (\d+) = accepted (\d+) \+ rejected 4 ", logged)  # broken-on-purpose rows
    assert counts and int(counts[1]) == int(counts[2]) + 4
    items = SampleConfig().items
    assert f"items: read {items + 2} = accepted {items} + rejected 2" in logged
    assert "INFO profile_features.pipeline" in logged
    assert "=== Online features of user u00000 ===" in out
    assert "profile_text: Mostly interested in" in out
    ranked = [line for line in out.splitlines() if line.strip().startswith(("1. ", "10. "))]
    assert len(ranked) == 2
    assert "=== new-user-demo, three events later" in out
    assert "student_history_len: 3" in out  # the stream scored their three events; nothing was online before
    for table in (
        "histories",
        "profiles",
        "user_profile_embeddings",
        "item_text_embeddings",
        "rejects",
        "registry.db",
        "online_store.db",
    ):
        assert (repo / "data" / table).exists(), table

    shipped = re.findall(
        r"\[guard\] shipping (configured|without_item_content|plain_sasrec|the popularity prior)", logged
    )
    assert len(shipped) == 2 and "the popularity prior" not in shipped, logged[-4000:]  # one per snapshot
    assert re.search(r"student_variant: (configured|without_item_content|plain_sasrec)\n", out)
    assert "ranks by popularity" not in logged
