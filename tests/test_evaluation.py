"""Metrics against hand-computed values, the cold-start slice, and the evaluate report end to end."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_features.evaluation.cold_start import history_counts, natural_cold_users, truncate_histories
from profile_features.evaluation.report import goal_checks, summarise, write_report
from profile_features.metrics import (
    auc,
    hit_rate_at_k,
    list_metrics,
    mean_metrics,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
)


def test_metrics_match_hand_computed_values():
    # Ranked by score: items 0 (rel), 1, 2 (rel), 3, 4 (rel).
    labels, scores = np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    dcg = 1 + 1 / math.log2(4) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(labels, scores, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(labels, scores, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert recall_at_k(labels, scores, 2) == pytest.approx(1 / 3)
    assert hit_rate_at_k(np.array([0, 0, 1]), np.array([3, 2, 1]), 2) == 0.0
    assert reciprocal_rank(np.array([0, 0, 1]), np.array([3, 2, 1])) == pytest.approx(1 / 3)
    # 3 positives x 2 negatives: positive 0.9 beats both, 0.7 beats 0.6, 0.5 beats none -> 3 of 6.
    assert auc(labels, scores) == pytest.approx(3 / 6)
    assert auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5  # a tie counts half
    assert np.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))
    assert list_metrics(labels, scores, k=2)["hr@2"] == 1.0


def test_mean_metrics_skips_users_without_positives_and_filters_users():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "c"],
            "label": [1, 0, 0, 1, 0, 0],
            "score": [0.9, 0.1, 0.9, 0.1, 0.5, 0.4],
        }
    )
    both = mean_metrics(frame, "score")
    assert both["users"] == 2  # c has no positive
    assert both["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert both["auc"] == pytest.approx(0.5)
    only_b = mean_metrics(frame, "score", users=["b"])
    assert only_b["users"] == 1 and only_b["mrr"] == pytest.approx(0.5)


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(
        timestamp=lambda f: pd.to_datetime(f.timestamp, utc=True)
    )


def test_candidate_rows_do_not_depend_on_the_order_tables_were_read_in():
    from profile_features.evaluation.candidates import candidate_rows

    rng = np.random.default_rng(0)
    start = datetime(2024, 1, 10, tzinfo=timezone.utc)
    interactions = pd.DataFrame(
        {
            "user_id": [f"u{i % 7}" for i in range(120)],
            "item_id": [f"i{int(x)}" for x in rng.zipf(1.5, 120) % 40],
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(120) * 3, unit="h"),
        }
    )
    items = np.array([f"i{k}" for k in range(40)])
    end = interactions.timestamp.max() + pd.Timedelta(seconds=1)
    expected = candidate_rows(interactions, items, start, end, 5, np.random.default_rng(1))
    shuffled = candidate_rows(
        interactions.sample(frac=1, random_state=2), rng.permutation(items), start, end, 5, np.random.default_rng(1)
    )
    pd.testing.assert_frame_equal(expected, shuffled)
    window = interactions[interactions.timestamp >= start]
    assert expected.label.sum() == window.drop_duplicates(["user_id", "item_id"]).shape[0]
    seen = set(zip(interactions.user_id, interactions.item_id))
    negatives = expected[expected.label == 0]
    assert not any((u, i) in seen for u, i in zip(negatives.user_id, negatives.item_id))


def test_cold_start_slice_and_truncation():
    cutoff = datetime(2024, 1, 10, tzinfo=timezone.utc)
    rows = [("long", f"i{d}", f"2024-01-0{d}") for d in range(1, 9)] + [("long", "late", "2024-01-11")]
    rows += [("short", "s1", "2024-01-05"), ("short", "s2", "2024-01-12"), ("new", "n1", "2024-01-12")]
    events = _events(rows)
    counts = history_counts(events, ["long", "short", "new"], cutoff)
    assert counts.to_dict() == {"long": 8, "new": 0, "short": 1}
    assert natural_cold_users(events, ["long", "short", "new"], cutoff, max_history=5) == ["short"]
    cut = truncate_histories(events, ["long"], cutoff, keep=5)
    kept = cut[cut.user_id == "long"].item_id.tolist()
    assert kept == ["i1", "i2", "i3", "i4", "i5", "late"]  # first five before the cutoff, targets untouched
    assert len(cut) == len(events) - 3 and set(cut[cut.user_id != "long"].item_id) == {"s1", "s2", "n1"}


def _long_results():
    rows = []
    for seed, (base, plugin) in enumerate([(0.20, 0.24), (0.22, 0.25), (0.21, 0.245)]):
        for variant, value in (("none", base), ("+ all semantic columns", plugin)):
            rows.append(
                {
                    "model": "lightgbm",
                    "variant": variant,
                    "seed": seed,
                    "slice": "all",
                    "metric": "ndcg@10",
                    "value": value,
                    "users": 50,
                }
            )
            rows.append(
                {
                    "model": "lightgbm",
                    "variant": variant,
                    "seed": seed,
                    "slice": "cold",
                    "metric": "ndcg@10",
                    "value": value * (1.0 if variant == "none" else 0.9),
                    "users": 20,
                }
            )
    return pd.DataFrame(rows)


def _per_user(effects: dict[tuple[str, str], float], users: int = 200, seeds: int = 3, noise: float = 0.05):
    """Per-user NDCG@10 of the baseline ("none") and variants, per slice: effects[(variant, slice)] is the true
    difference; each user has a base level, each (variant, seed, user) noise."""
    rng = np.random.default_rng(11)
    base = rng.uniform(0.1, 0.4, size=users)
    rows = []
    for (variant, slice_name), effect in effects.items():
        for seed in range(seeds):
            value = base + effect + (0 if variant == "none" else rng.normal(0, noise, size=users))
            rows.append(
                pd.DataFrame(
                    {
                        "model": "lightgbm",
                        "variant": variant,
                        "seed": seed,
                        "slice": slice_name,
                        "metric": "ndcg@10",
                        "user_id": [f"u{i}" for i in range(users)],
                        "value": value,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_report_numbers_and_goal_checks(tmp_path):
    results = _long_results()
    summary = summarise(results)
    row = summary[(summary.variant == "+ all semantic columns") & (summary.slice == "all")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean([0.24, 0.25, 0.245]))
    assert row["std"] == pytest.approx(np.std([0.24, 0.25, 0.245], ddof=1))
    assert row["lift"] == pytest.approx(np.mean([0.24, 0.25, 0.245]) / np.mean([0.20, 0.22, 0.21]) - 1)
    per_user = _per_user(
        {("none", "all"): 0.0, ("+ all semantic columns", "all"): 0.04, ("none", "cold"): 0.0}
        | {("+ all semantic columns", "cold"): 0.01}
    )
    checks = {c["slice"]: c for c in goal_checks(per_user)}
    assert checks["all"]["met"] and checks["all"]["outcome"] == "passed"
    assert not checks["cold"]["met"]  # a lift below +10%
    assert checks["all"]["difference"] == pytest.approx(0.04, abs=0.005)
    guard = {
        "variant": "popularity",
        "validation_users": 91,
        "short_history_users": 12,
        "popularity_ndcg": 0.073,
        "popularity_half_life_windows": 0.25,
        "reason": "no trained variant was shown not worse than most-popular",
    }
    details = {"student_training": [None, {"run_date": "1998-03-07", "guard": guard}]}
    path = write_report(tmp_path, results, {"dataset": "hand-made"}, per_user=per_user, details=details)
    text = path.read_text()
    assert "## What the student's deployment guard shipped" in text
    assert "| 1998-03-07 | popularity | 91 (12) | 0.0730 (half-life 0.25 x the validation window) | no trained" in text
    assert f"{row['mean']:.4f} +/- {row['std']:.4f}" in text
    assert f"{100 * row['lift']:+.1f}%" in text
    assert (tmp_path / "ndcg.png").stat().st_size > 1000 and (tmp_path / "results.csv").exists()
    assert pd.read_csv(tmp_path / "results.csv").shape == results.shape


def test_a_check_without_the_power_to_fail_is_inconclusive_never_passed(tmp_path):
    """The student at -12% on 40 noisy users: the interval holds zero, so the check is inconclusive (it used
    to pass as "no measurable difference"); at -30% on 400 users it fails; at +30% it passes."""
    from profile_features.evaluation.report import acceptance_checks, check_counts

    def student(effect: float, users: int, noise: float = 0.15) -> pd.DataFrame:
        frame = _per_user({("most popular", "all"): 0.0, ("student", "all"): effect}, users=users, noise=noise)
        return frame.assign(model="student")

    weak = acceptance_checks(student(-0.12 * 0.25, 40, noise=0.4), None)
    assert [c["outcome"] for c in weak] == ["inconclusive"] and not weak[0]["passed"]
    assert weak[0]["low"] < 0 < weak[0]["high"] and weak[0]["detectable_lift"] > 0.12
    assert acceptance_checks(student(-0.3 * 0.25, 400), None)[0]["outcome"] == "failed"
    assert acceptance_checks(student(0.3 * 0.25, 400), None)[0]["outcome"] == "passed"
    counts = check_counts(weak + acceptance_checks(student(0.3 * 0.25, 400), None))
    assert counts == {"passed": 1, "failed": 0, "inconclusive": 1}
    document_dir = tmp_path / "report"
    text = write_report(document_dir, _long_results(), {"dataset": "d"}, per_user=student(-0.03, 40, 0.4)).read_text()
    assert "0 passed, 0 failed, 1 inconclusive" in text and "**INCONCLUSIVE**" in text
    document = __import__("json").loads((document_dir / "report.json").read_text())
    assert document["check_counts"]["inconclusive"] == 1 and document["all_checks_passed"] is False


def test_control_comparison_isolates_what_the_user_side_adds(tmp_path):
    from profile_features.evaluation.report import control_comparisons

    per_user = _per_user(
        {
            ("none", "all"): 0.0,
            ("+ item text only (control)", "all"): 0.02,
            ("+ all semantic columns", "all"): 0.05,
        }
    )
    check = {c["variant"]: c for c in control_comparisons(per_user)}["+ all semantic columns"]
    assert check["baseline"] == "+ item text only (control)"
    assert check["difference"] == pytest.approx(0.03, abs=0.005) and check["outcome"] == "passed"
    text = write_report(tmp_path, _long_results(), {"dataset": "hand-made"}, per_user=per_user).read_text()
    assert "What the user side and the student add over item content" in text
    assert (
        f"| + all semantic columns | all | 200 x 3 | {100 * check['lift']:+.1f}% | {check['difference']:+.4f} |" in text
    )


def test_evaluate_repo_never_points_at_the_users_data_dir(tmp_path):
    """The README tells users to set data_dir in feature_repo/profile_features.yaml to their jobs' folder;
    evaluate's copy must keep its own tables, registry and online store whatever that file says."""
    import shutil

    import yaml

    from profile_features.evaluation.run import SHIPPED_REPO, isolated_repo
    from profile_features.feast.settings import load_feast_settings

    users_repo = tmp_path / "users_repo"
    shutil.copytree(SHIPPED_REPO, users_repo, ignore=shutil.ignore_patterns("data"))
    real_data = tmp_path / "production" / "data"
    (users_repo / "profile_features.yaml").write_text(yaml.safe_dump({"data_dir": str(real_data)}))
    store = yaml.safe_load((users_repo / "feature_store.yaml").read_text())
    store["online_store"] = {"type": "sqlite", "path": str(tmp_path / "production" / "online.db")}
    (users_repo / "feature_store.yaml").write_text(yaml.safe_dump(store))

    repo = isolated_repo(tmp_path / "evaluate" / "repo", users_repo)
    assert load_feast_settings(repo / "profile_features.yaml").data_dir == str((repo / "data").resolve())
    text = (repo / "feature_store.yaml").read_text()
    assert "production" not in text and "data/online_store.db" in text and "data/registry.db" in text
    assert not (repo / "feature_store.redis.yaml").exists()


def test_evaluate_job_writes_nothing_outside_its_own_data_dir(tmp_path):
    """A production job may keep its profile cache, dead letters and stream checkpoint outside data_dir, and
    profile only a refresh list; evaluate's copy of the job must keep every one under its own folder."""
    from profile_features.config import InputsConfig, JobConfig
    from profile_features.evaluation.run import isolated_job

    production = tmp_path / "production"
    job = JobConfig.model_validate(
        {
            "data_dir": str(production / "data"),
            "profile": {
                "cache": {"path": str(production / "cache")},
                "dead_letter_path": str(production / "dead"),
                "only_users": str(production / "refresh.csv"),
            },
            "stream": {"checkpoint": str(production / "stream")},
            "student": {"overrides": ["train.epochs=7"]},
        }
    )
    mine = tmp_path / "evaluate" / "data"
    inputs = InputsConfig.model_validate({t: {"path": str(tmp_path / f"{t}.csv")} for t in ("interactions", "items")})
    isolated = isolated_job(job, mine, inputs, ["train.patience=2"])
    assert "production" not in isolated.model_dump_json()
    assert isolated.data_dir == str(mine) and isolated.profile.only_users is None
    assert isolated.student.overrides == ["train.epochs=7", "train.patience=2"]
    # what is left unset resolves inside the evaluation's data_dir
    assert isolated.profile.cache.path is None and isolated.profile.dead_letter_path is None
    assert isolated.stream.checkpoint is None


def test_evaluate_preflight_fails_in_seconds_naming_the_install_line(tmp_path, monkeypatch):
    import sys
    import time

    from profile_features.config import JobConfig
    from profile_features.evaluation.run import EvaluationConfig, MissingExtras, preflight

    inputs = {"interactions": {"path": str(tmp_path / "missing.csv")}, "items": {"path": str(tmp_path / "i.csv")}}
    config = EvaluationConfig(job=JobConfig.model_validate({"inputs": inputs}))
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # how Python reports a package that cannot be imported
    start = time.monotonic()
    with pytest.raises(MissingExtras, match=r"lightgbm.*pip install 'profile-features\[evaluation"):
        preflight(config)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="inputs.interactions.path"):
        preflight(config)
    assert time.monotonic() - start < 60


def test_evaluate_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    from profile_features.cli import main

    (tmp_path / "job.yaml").write_text("inputs: {interactions: {path: nowhere.csv}, items: {path: no.csv}}\nbogus: 1\n")
    assert main(["evaluate", "--config", str(tmp_path / "job.yaml"), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bogus" in err[0]
    (tmp_path / "job.yaml").write_text("inputs: {interactions: {path: nowhere.csv}, items: {path: no.csv}}\n")
    assert main(["evaluate", "--config", str(tmp_path / "job.yaml"), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "nowhere.csv" in err[-1]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, spark):
    """`profile-features evaluate --config job.yaml` on a generated CSV pair, with the truncated cold run."""
    import yaml

    from profile_features.cli import build_parser, evaluation_config, main
    from profile_features.config import SampleConfig
    from profile_features.datasets import generate_sample
    from profile_features.datasets.variants import write_csv_pair

    root = tmp_path_factory.mktemp("evaluate")
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


def test_html_report_renders_the_markdown_and_escapes_text(tmp_path):
    from profile_features.evaluation.html import render_html

    results = _long_results()
    write_report(tmp_path, results, {"dataset": "<script>alert(1)</script> & co"}, provenance={"model": "m<1>"})
    page = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "<td>m&lt;1&gt;</td>" in page and page.count("data:image/png;base64,") == 2  # lift + ndcg plots
    lines = ["# t", "", "- **a**: `b`", "", "| x | y |", "|---|---|", "| 1 | 2 |", "", "![p](none.png)", "text"]
    html = render_html(lines, tmp_path, {"k": "v"})
    assert "<li><strong>a</strong>: <code>b</code></li>" in html
    assert "<tr><th>x</th><th>y</th></tr>" in html and "<tr><td>1</td><td>2</td></tr>" in html
    assert "none.png" not in html and "<p>text</p>" in html  # a missing image is left out, not a broken link


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
    from tests.test_forget import _id_hits

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
