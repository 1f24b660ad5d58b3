"""The evaluate report end to end: a real run on a small pipeline (Spark + Feast), its HTML in Chromium,
and forget reaching the run's work folder (metrics and the report's numbers: tests/unit/test_evaluation.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_features.evaluation.cold_start import history_counts


@pytest.fixture(scope="module")
def evaluation(module_tmp, spark):
    """`profile-features evaluate --config job.yaml` on a generated CSV pair, with the truncated cold run."""
    import yaml

    from profile_features.cli import build_parser, evaluation_config, main
    from profile_features.config import SampleConfig
    from profile_features.datasets import generate_sample
    from profile_features.datasets.variants import write_csv_pair

    root = module_tmp / "evaluate"

    root.mkdir()
    sample = generate_sample(SampleConfig(users=60, items=80, mean_interactions=15, seed=3))
    inputs = write_csv_pair(sample.interactions, sample.items, root / "my_data")
    (root / "job.yaml").write_text(yaml.safe_dump({"inputs": inputs.model_dump(), "spark": {"master": "local[2]"}}))
    argv = [
        "evaluate",
        "--config",
        str(root / "job.yaml"),
        "--workdir",
        str(root / "work"),
        "--seeds",
        "2",
        "--cold-slice",
        "truncated",
        "--two-tower-epochs",
        "3",
        "--latency-requests",
        "3",
        "--student-set",
        "train.epochs=3",
        "--student-set",
        "body.max_len=20",
        "--student-set",
        "train.num_threads=1",
    ]
    stale = root / "work" / "full" / "repo" / "data" / "transforms" / "from-an-earlier-run"
    stale.mkdir(parents=True)  # an earlier run's transforms must not be reused on other data
    assert main(argv) == 0
    assert not stale.exists()
    config = evaluation_config(build_parser().parse_args(argv))  # what the command ran, for the checks
    return config, sample, config.report_dir / "report.md"


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_evaluate_config_writes_a_report_whose_numbers_match_a_direct_computation(evaluation):
    import json

    from feast import FeatureStore

    from profile_features.evaluation.gbdt import BASELINE, RankerParams, column_sets, fit_ranker, historical_rows
    from profile_features.evaluation.split import build_split
    from profile_features.pipeline import snapshot_cutoffs

    config, sample, report = evaluation
    text = report.read_text()
    for name in ("report.md", "report.json", "ndcg.png", "results.csv", "summary.csv"):
        assert (config.report_dir / name).stat().st_size > 0
    results = pd.read_csv(config.report_dir / "results.csv")
    assert set(results.model) == {"lightgbm", "two_tower", "student"}
    assert set(results[results.model == "lightgbm"].variant) == set(column_sets())
    assert set(results[results.model == "student"].variant) == {"most popular", "student", "plain SASRec"}
    assert {"all", "cold"} <= set(results.slice) and "truncated" in text and "Online latency" in text

    document = json.loads((config.report_dir / "report.json").read_text())
    assert document["recommendation"]["variant"] in column_sets()
    assert {c["check"] for c in document["checks"]} >= {"student vs most popular", "student vs plain SASRec"}
    towers = document["two_tower_recommendation"]
    assert [c["variant"] for c in towers["candidates"]] == ["with semantic inputs"]
    assert towers["variant"] == ("with semantic inputs" if towers["helps"] else "without semantic inputs")
    assert "## Which inputs to give the two-tower" in text
    tower_checks = [c for c in document["checks"] if c["check"] == "recommended two-tower inputs vs ID only"]
    assert bool(tower_checks) == towers["helps"] and all(c["metric"] == "recall@50" for c in tower_checks)
    assert sum(document["check_counts"].values()) == len(document["checks"])
    assert all(c["passed"] == (c["outcome"] == "passed") for c in document["checks"])
    verdicts = {(c["model"], c["variant"], c["slice"], c["metric"]): c for c in document["comparisons"]}
    summary = pd.read_csv(config.report_dir / "summary.csv")
    for (model, variant, slice_name, metric), c in verdicts.items():
        row = summary.query("model == @model and variant == @variant and slice == @slice_name and metric == @metric")
        assert c["outcome"] in ("passed", "failed", "inconclusive") and c["low"] <= c["difference"] <= c["high"]
        assert c["users"] <= row["users"].item()
    assert document["slices"]["all"] == results.query("model == 'lightgbm' and slice == 'all'").users.max()

    # LightGBM without semantic columns, seed 0, recomputed from Feast with an independent NDCG, using the
    # settings and tree count the report says it chose.
    interactions = sample.interactions
    store = FeatureStore(repo_path=str(config.workdir / "full" / "repo"))
    train_cutoff, test_cutoff = snapshot_cutoffs(interactions.timestamp, config.quantiles)
    end = interactions.timestamp.max() + pd.Timedelta(seconds=1)
    split = build_split(interactions, (train_cutoff, test_cutoff), end, config.valid_fraction)
    items = sample.items.item_id.to_numpy()
    chosen = document["details"]["lightgbm_params"]["none"]
    params = RankerParams(
        chosen["num_leaves"], chosen["min_data_in_leaf"], chosen["feature_fraction"], chosen["lambda_l2"]
    )
    train = historical_rows(store, interactions, items, train_cutoff, test_cutoff, config.negatives, 0)
    test = historical_rows(store, interactions, items, test_cutoff, end, config.negatives, 1000)
    model = fit_ranker(train, BASELINE, 0, params, trees=chosen["final_trees_per_seed"][0])
    scored = test.assign(score=model.predict(test[BASELINE]))
    ndcgs = []
    for user, group in scored.groupby("user_id"):
        if group.label.max() == 0 or user not in split.slices["all"]:
            continue
        ranked = group.sort_values("score", ascending=False, kind="stable").label.to_numpy()[:10]
        dcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ranked))
        ideal = sum(1 / math.log2(i + 2) for i in range(min(10, int(group.label.sum()))))
        ndcgs.append(dcg / ideal)
    reported = results.query(
        "model == 'lightgbm' and variant == 'none' and seed == 0 and slice == 'all' and metric == 'ndcg@10'"
    ).value.item()
    assert reported == pytest.approx(np.mean(ndcgs), abs=1e-9)
    row = summary.query("model == 'lightgbm' and variant == 'none' and slice == 'all' and metric == 'ndcg@10'").iloc[0]
    assert f"{row['mean']:.4f} +/- {row['std']:.4f}" in text

    # The student comparison's most-popular, recomputed: each test user's first five items after the cutoff
    # (the guard's targets_per_user), ranked by counts before it over the checkpoint's items, NDCG@10 averaged
    # per user, then over the users with a history.
    from profile_features.catalogue import STUDENT, Snapshot
    from profile_features.student.scoring import load_student

    student = load_student(Snapshot(str(config.workdir / "full" / "repo" / "data"), test_cutoff).path(STUDENT))
    before = interactions[interactions.timestamp < test_cutoff]
    counts = before.item_id.astype(str).value_counts().reindex(student.item_index.item_ids, fill_value=0)
    after = interactions[interactions.timestamp >= test_cutoff].sort_values("timestamp", kind="stable")
    per_user = []
    for user, group in after.groupby("user_id"):
        targets = [item for item in group.item_id.astype(str).head(5) if item in counts.index]
        if user not in set(before.user_id) or user not in split.slices["all"] or not targets:
            continue
        ranks = [(counts > counts[t]).sum() + ((counts == counts[t]).sum() - 1) / 2 for t in targets]
        per_user.append(np.mean([1 / math.log2(r + 2) if r < 10 else 0.0 for r in ranks]))
    popular = results.query(
        "model == 'student' and variant == 'most popular' and seed == 0 and slice == 'all' and metric == 'ndcg@10'"
    )
    assert popular.users.item() == len(per_user) and popular.value.item() == pytest.approx(np.mean(per_user))

    # The cold slice: test users with 1-5 interactions before the cutoff once truncated.
    counts = history_counts(interactions, interactions[interactions.timestamp >= test_cutoff].user_id, test_cutoff)
    cold_users = results.query("model == 'lightgbm' and slice == 'cold'").users.max()
    assert cold_users == (counts >= 1).sum() > 0

    # The cold run measures with the full run's models: each snapshot's student scores the cut histories
    # (nothing trained there); LightGBM's reuse of the settings is test_selection's.
    full_data, cold_data = config.workdir / "full" / "repo" / "data", config.workdir / "cold" / "repo" / "data"
    assert not (cold_data / "student").exists() and (full_data / "student").exists()
    for run_date in (f"{train_cutoff:%Y-%m-%d}", f"{test_cutoff:%Y-%m-%d}"):
        cold_ids = set(pd.read_parquet(cold_data / "user_student" / f"run_date={run_date}").student_checkpoint_id)
        full_ids = set(pd.read_parquet(full_data / "user_student" / f"run_date={run_date}").student_checkpoint_id)
        assert cold_ids == full_ids and len(full_ids) == 1
    phases = document["details"]["phase_seconds"]
    assert {"cold run: features from the cut histories", "cold run: lightgbm"} <= set(phases)


def chromium_dom(page, profile) -> str:
    """The page's DOM after load, as headless Chromium (the Debian package) renders it. The flags keep
    it off the network this machine does not have; `profile` is a fresh user-data folder."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    command += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    command += [f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_evaluate_html_report_renders_in_chromium_with_provenance(evaluation, tmp_path):
    import re

    from profile_features import __version__
    from profile_features.evaluation.run import dataset_hash

    config, _, _ = evaluation
    dom = chromium_dom(config.report_dir / "report.html", tmp_path / "chromium")
    images = len(re.findall(r"<img ", dom))
    decoded = int(re.search(r'data-images-decoded="(\d+)"', dom).group(1))
    assert images == decoded == 3  # lift per column set, NDCG per slice, latency: every plot decoded
    assert int(re.search(r'data-tables="(\d+)"', dom).group(1)) >= 8
    provenance = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td></tr>", dom.split("</table>")[0]))
    assert provenance["profile-features"] == __version__
    assert dataset_hash(config.job.inputs) in provenance["dataset"]
    assert provenance["generator"] == "rule_based" and provenance["prompt version"]
    assert provenance["encoder"].startswith("all-MiniLM-L6-v2")
    assert provenance["student checkpoint"].startswith("student-")
    assert provenance["profile transform"] and provenance["item transform"]
    assert "Which inputs to give the two-tower" in dom and "Online latency" in dom


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.feast
def test_forget_reaches_an_evaluation_work_folder(evaluation, tmp_path):
    """`forget --evaluation WORKDIR`: a user the cold run cut is gone from both runs' tables and online
    stores and from the cut inputs (on a copy of the module's work folder); another user is kept."""
    import shutil

    from feast import FeatureStore

    from profile_features.config import JobConfig
    from profile_features.erasure import forget_users
    from tests.integration.test_forget import _id_hits

    config, sample, _ = evaluation
    work = Path(shutil.copytree(config.workdir, tmp_path / "work"))
    cut = pd.read_parquet(work / "cold" / "raw" / "interactions.parquet")
    stats = pd.read_parquet(work / "full" / "repo" / "data" / "user_stats")  # users with a snapshot row
    both = sorted(set(cut.user_id) & set(stats.user_id))
    forgotten, kept = both[0], both[1]
    assert _id_hits(work, forgotten) and _id_hits(work, kept)
    store = FeatureStore(repo_path=str(work / "full" / "repo"))  # the run's own online store

    def online(user):
        return store.get_online_features(["user_stats:user_interaction_count"], [{"user_id": user}]).to_dict()

    before = online(kept)
    assert before["user_interaction_count"][0] is not None
    job = JobConfig(data_dir=str(tmp_path / "production"))  # the team's own data_dir, empty here
    result = forget_users(job, [forgotten], evaluations=[work])
    assert _id_hits(work, forgotten) == []
    assert _id_hits(work / "full", kept) and _id_hits(work / "cold" / "raw", kept)
    runs = result.record["evaluations"][str(work)]
    assert set(runs["runs"]) == {"full", "cold"} and all(r["rows_removed"] > 0 for r in runs["runs"].values())
    assert runs["cut_inputs_rows_removed"] == int((cut.user_id == forgotten).sum()) > 0
    assert forgotten not in json.dumps(result.record)
    assert online(kept) == before and online(forgotten)["user_interaction_count"] == [None]
