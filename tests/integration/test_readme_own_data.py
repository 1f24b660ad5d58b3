"""The README's "Use your own data" section, step by step as a new user runs it: its job YAML on a
generated CSV pair in a temporary folder, its seven `spark-submit` lines (with the virtualenv active,
nothing else set), then `feast apply` and `profile-features materialize` on a copy of the shipped
repo, and an online read. The data is two years old, so Feast's own `materialize-incremental` would
load nothing (older than the ttl): the README's command must."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from profile_features.config import SampleConfig
from profile_features.datasets import generate_sample
from profile_features.datasets.variants import write_csv_pair
from tests.support.repo import REPO_ROOT, make_repo

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.feast]
BIN = Path(sys.executable).parent


def own_data_section() -> str:
    """From "## Use your own data" to its first subsection after the stages ("### Encoder backends")."""
    text = (REPO_ROOT / "README.md").read_text()
    return text.split("## Use your own data\n", 1)[1].split("\n### Encoder backends", 1)[0]


def activated_env() -> dict:
    """What `. .venv/bin/activate` leaves: the venv first on PATH, no Python chosen for Spark."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(BIN.parent)}


def test_readme_own_data_steps_end_in_online_features(tmp_path, pipeline_run):
    from feast import FeatureStore

    section = own_data_section()
    sample = generate_sample(SampleConfig(users=40, items=60, mean_interactions=12, seed=11))
    interactions = sample.interactions.assign(timestamp=sample.interactions.timestamp - pd.Timedelta(days=730))
    inputs = write_csv_pair(interactions, sample.items, tmp_path / "raw")

    job = yaml.safe_load(re.search(r"```yaml\n(# my_job.yaml.*?)```", section, flags=re.S).group(1))
    job["data_dir"] = str(tmp_path / "profile_features")
    job["inputs"]["interactions"] = {"path": inputs.interactions.path}
    job["inputs"]["items"] = {"path": inputs.items.path}
    job["student"] = {"overrides": ["train.epochs=2", "body.max_len=20", "train.num_threads=1"]}  # short
    # The session pipeline's encoder export, so this run does not export the encoder again (tested elsewhere).
    job["embedding"]["export_dir"] = pipeline_run["config"].table_path("encoders")
    (tmp_path / "my_job.yaml").write_text(yaml.safe_dump(job))

    # The README defines SUBMIT (spark-submit with the shipped log4j2 profile), then runs the seven stages.
    submit = re.search(r"^SUBMIT=.*$", section, flags=re.M).group(0)
    stages = re.findall(r"^\$SUBMIT .*$", section, flags=re.M)
    assert len(stages) == 7, stages
    for line in stages:
        script = f"{submit}\n{line.replace('configs/job.yaml', str(tmp_path / 'my_job.yaml'))}"
        result = subprocess.run(
            ["bash", "-e", "-c", script], cwd=REPO_ROOT, env=activated_env(), capture_output=True, text=True
        )
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        assert len(result.stderr.splitlines()) < 400, f"{line}: stderr floods ({len(result.stderr.splitlines())} lines)"
        assert "Traceback" not in result.stderr and "Py4J" not in result.stderr, f"{line}\n{result.stderr[-3000:]}"

    repo = make_repo(tmp_path / "serving", job["data_dir"])  # "set data_dir in profile_features.yaml"
    serve = re.search(r"```bash\n(cd feature_repo && .*?)```", section, flags=re.S).group(1).strip()
    assert serve == "cd feature_repo && feast apply && profile-features materialize --repo ."
    result = subprocess.run(
        serve.replace("cd feature_repo", f"cd {repo}"), shell=True, env=activated_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "user_profile: first load" in result.stdout

    users = sorted(interactions.user_id.unique())[:3]
    online = (
        FeatureStore(repo_path=str(repo))
        .get_online_features(
            features=["user_profile:profile_embedding", "user_semantic:profile_cluster"],
            entity_rows=[{"user_id": u} for u in users],
        )
        .to_df()
    )
    assert online.profile_embedding.notna().all() and online.profile_cluster.notna().all()
