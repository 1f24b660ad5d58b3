"""Metrics against hand-computed values, the cold-start slice, the report and its goal checks, and the
evaluate job's folders and user errors (the evaluate run end to end: tests/integration/test_evaluation.py)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

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
    trained = {"variant": "configured", "validation_users": 91, "prior_weight": 0.5, "reason": "not worse"}
    details = {
        "student_training": [
            None,
            {"run_date": "1998-03-07", "guard": guard},
            {"run_date": "1998-04-07", "guard": trained},
        ]
    }
    path = write_report(tmp_path, results, {"dataset": "hand-made"}, per_user=per_user, details=details)
    text = path.read_text()
    assert "## What the student's deployment guard shipped" in text
    assert "| 1998-04-07 | configured + trending prior x 0.5 | 91 (0) | - | not worse |" in text
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
    # A column mapping that names a column the file lacks: one line naming the file and the column, before Spark.
    (tmp_path / "events.csv").write_text("uid,item_id,ts\nu1,i1,2024-01-01\n")
    (tmp_path / "items.csv").write_text("item_id,title\ni1,A\n")
    (tmp_path / "job.yaml").write_text(
        f"inputs: {{interactions: {{path: {tmp_path / 'events.csv'}, columns: {{user_id: user, timestamp: ts}}}}, "
        f"items: {{path: {tmp_path / 'items.csv'}}}}}\n"
    )
    assert main(["evaluate", "--config", str(tmp_path / "job.yaml"), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "events.csv" in err[0] and "'user'" in err[0] and "not in the file" in err[0]


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
