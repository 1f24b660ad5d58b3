"""Freshness: drift metrics against hand-computed values, the drift report on disk and
from the CLI, refresh-plan ordering and budget (the Spark plan and the profile job regenerating only
the planned users: tests/integration/test_freshness.py)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_features import schemas
from profile_features.cli import main
from profile_features.freshness import (
    DriftSettings,
    RunNotFound,
    TransformMismatch,
    check_refresh_list,
    compare_batches,
    compare_runs,
    drift_report,
    ks_statistic,
    plan_refresh,
    psi,
    total_variation,
)
from profile_features.freshness.drift import bin_shares, mean_vector_cosine, psi_from_shares, quantile_edges
from profile_features.freshness.refresh_plan import (
    FALLBACK_GENERATOR,
    budget_size,
    interactions_added,
    select_budget,
)
from profile_features.freshness.sketch import ColumnSketch

# ---------------------------------------------------------------- metrics


def test_psi_matches_a_hand_computation():
    reference = np.arange(10.0)  # median 4.5: two bins of 5
    current = np.array([1, 2, 3, 10, 11, 12, 13, 14.0])  # 3 / 8 below, 5 / 8 above
    expected = (0.375 - 0.5) * math.log(0.375 / 0.5) + (0.625 - 0.5) * math.log(0.625 / 0.5)
    assert psi(reference, current, bins=2) == pytest.approx(expected) == pytest.approx(0.063853, abs=1e-6)
    assert psi(reference, reference, bins=10) == 0.0


def test_psi_floors_empty_bins_at_epsilon():
    reference, current = np.arange(10.0), np.zeros(4)  # every current value in the lower bin
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert psi(reference, current, bins=2, epsilon=1e-4) == pytest.approx(expected) == pytest.approx(4.60431, abs=1e-4)


def test_bins_are_reference_quantiles_closed_on_the_right():
    edges = quantile_edges(np.arange(10.0), 2)
    assert edges.tolist() == [4.5]
    assert bin_shares([4.5, 4.6, np.nan], edges).tolist() == [0.5, 0.5]  # NaN ignored, 4.5 goes low
    assert quantile_edges(np.ones(5), 4).tolist() == [1.0]  # ties merge bins
    assert psi_from_shares([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_ks_statistic_matches_hand_computed_values():
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2], [5, 6, 7]) == 1.0
    assert ks_statistic([1, 2, 3, 4], [2.5]) == 0.5  # F_ref(2.5) = 0.5, F_cur = 1
    assert math.isnan(ks_statistic([], [1.0]))


def test_total_variation_and_mean_cosine():
    assert total_variation([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]) == pytest.approx(0.3)
    assert mean_vector_cosine([[1, 0], [1, 0]], [[0, 1], [1, 1]]) == pytest.approx(1 / math.sqrt(5))


def semantic_frame(rng, n: int, shift: float = 0.0, moved: int = 0, transform_id: str = "profile-abc") -> pd.DataFrame:
    """n users, 4 standard-normal components (pc_2 shifted by `shift`), clusters 0-3;
    `moved` users of cluster 1 moved to cluster 3."""
    frame = pd.DataFrame({f"profile_pc_{i}": rng.normal(size=n).astype("float32") for i in range(4)})
    frame["profile_pc_2"] += np.float32(shift)
    cluster = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    ones = np.flatnonzero(cluster == 1)[:moved]
    cluster[ones] = 3
    frame["profile_cluster"] = cluster.astype("int64")
    frame["profile_transform_id"] = transform_id
    frame.insert(0, "user_id", [f"u{i:05d}" for i in range(n)])
    return frame


def test_same_distribution_raises_no_flags():
    rng = np.random.default_rng(0)
    reference, current = semantic_frame(rng, 2000), semantic_frame(rng, 2000)
    result = compare_runs(reference, current)
    assert result["flagged"] == []
    assert compare_runs(reference, reference)["flagged"] == []
    assert [d["column"] for d in result["dimensions"]] == [f"profile_pc_{i}" for i in range(4)]


def test_shifted_dimension_and_moved_cluster_are_the_only_flags():
    rng = np.random.default_rng(1)
    reference, current = semantic_frame(rng, 2000), semantic_frame(rng, 2000, shift=1.0, moved=300)
    current.loc[:9, "profile_cluster"] = -1  # ten users without a vector: counted, left out
    current.loc[:9, [f"profile_pc_{i}" for i in range(4)]] = np.nan
    result = compare_runs(reference, current, settings=DriftSettings())
    flagged_dims = {d["column"] for d in result["dimensions"] if d["flags"]}
    assert flagged_dims == {"profile_pc_2"}
    shifted = next(d for d in result["dimensions"] if d["column"] == "profile_pc_2")
    assert shifted["psi"] > 0.2 and shifted["ks"] > 0.1 and shifted["current_mean"] - shifted["reference_mean"] > 0.8
    assert {row["cluster"] for row in result["clusters"]["table"] if row["flagged"]} == {1, 3}
    assert result["current_without_vector"] == 10 and result["reference_without_vector"] == 0
    assert -1 not in {row["cluster"] for row in result["clusters"]["table"]}
    assert sum(row["current_count"] for row in result["clusters"]["table"]) == 1990
    # The cluster PSI / TVD follow from the share table.
    table = result["clusters"]["table"]
    assert result["clusters"]["tvd"] == pytest.approx(0.5 * sum(abs(r["change"]) for r in table))
    assert result["clusters"]["psi"] == pytest.approx(
        psi_from_shares([r["reference_share"] for r in table], [r["current_share"] for r in table])
    )
    # Looser thresholds: nothing flagged.
    loose = DriftSettings(psi=100, ks=1, cluster_psi=100, cluster_tvd=1, cluster_share=1)
    assert compare_runs(reference, current, settings=loose)["flagged"] == []


def _batches(frame: pd.DataFrame, rows: int):
    return lambda: (frame.iloc[i : i + rows] for i in range(0, len(frame), rows))


def test_batched_comparison_equals_the_in_memory_one_and_stays_close_when_sampled():
    rng = np.random.default_rng(4)
    reference, current = semantic_frame(rng, 5000), semantic_frame(rng, 5000, shift=0.3, moved=200)
    reference.loc[::50, "profile_cluster"] = -1  # rows without a vector are counted, not compared
    exact = compare_runs(reference, current)
    batched = compare_batches(_batches(reference, 333), _batches(current, 333), capacity=5000)
    # The whole run fits the sample: the same figures, batch by batch (moments merged to rounding).
    assert {k: v for k, v in batched.items() if k != "dimensions"} == {
        k: v for k, v in exact.items() if k != "dimensions"
    }
    for b, e in zip(batched["dimensions"], exact["dimensions"]):
        assert (b["psi"], b["ks"], b["flags"]) == (e["psi"], e["ks"], e["flags"])
        assert b["reference_mean"] == pytest.approx(e["reference_mean"], abs=1e-12)
    assert exact["reference_without_vector"] == 100
    kept = reference[reference.profile_cluster >= 0]
    for d in exact["dimensions"]:
        assert d["ks"] == pytest.approx(ks_statistic(kept[d["column"]], current[d["column"]]))
        assert d["psi"] == pytest.approx(psi(kept[d["column"]], current[d["column"]]))

    sampled = compare_batches(_batches(reference, 333), _batches(current, 333), capacity=500)
    assert sampled["clusters"] == exact["clusters"]
    assert [f.split()[:2] for f in sampled["flagged"]] == [f.split()[:2] for f in exact["flagged"]]  # same flags
    for s, e in zip(sampled["dimensions"], exact["dimensions"]):
        assert s["reference_mean"] == pytest.approx(e["reference_mean"], abs=1e-9)
        assert s["current_std"] == pytest.approx(e["current_std"], rel=1e-9)
        assert s["ks"] <= e["ks"] + 1e-12 and s["ks"] == pytest.approx(e["ks"], abs=0.02)
        assert s["psi"] == pytest.approx(e["psi"], abs=0.03)


def test_reservoir_sample_is_uniform_over_a_sorted_stream():
    """Values arrive sorted (as a run sorted by a column would): a sample of the first rows would be all small."""
    sketch = ColumnSketch(capacity=1000, seed=0)
    values = np.arange(100_000, dtype=np.float64)
    for start in range(0, len(values), 777):
        sketch.update(values[start : start + 777])
    assert len(sketch.sample) == 1000 and not sketch.exact
    assert sketch.sample.mean() == pytest.approx(values.mean(), rel=0.06)
    assert np.quantile(sketch.sample, 0.9) == pytest.approx(90_000, rel=0.05)
    assert sketch.mean == pytest.approx(values.mean()) and sketch.std == pytest.approx(values.std())


# ---------------------------------------------------------------- the report on disk


def write_run(data_dir: Path, table: str, run_date: str, frame: pd.DataFrame) -> Path:
    folder = data_dir / table / f"run_date={run_date}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "part-0.parquet", index=False, coerce_timestamps="us")  # as the jobs write them
    return folder


def test_drift_report_compares_the_two_newest_runs_and_writes_markdown_and_json(tmp_path, capsys):
    rng = np.random.default_rng(2)
    runs = {
        "2026-01-01": semantic_frame(rng, 800),
        "2026-02-01": semantic_frame(rng, 800),
        "2026-03-01": semantic_frame(rng, 800, shift=1.0, moved=200),
    }
    for run, frame in runs.items():
        write_run(tmp_path, "user_semantic", run, frame)
        vectors = pd.DataFrame(
            {"user_id": frame.user_id, "profile_embedding": list(rng.normal(size=(len(frame), 8)) + 1)}
        )
        write_run(tmp_path, "user_profile_embeddings", run, vectors)

    report = drift_report(tmp_path)
    assert (report["reference"]["run"], report["current"]["run"]) == ("2026-02-01", "2026-03-01")
    direct = compare_runs(runs["2026-02-01"], runs["2026-03-01"])
    assert report["flagged"] == direct["flagged"] and report["flagged"]
    assert [d["psi"] for d in report["dimensions"]] == [d["psi"] for d in direct["dimensions"]]
    embeddings = [
        pd.read_parquet(tmp_path / "user_profile_embeddings" / f"run_date={r}").profile_embedding
        for r in ("2026-02-01", "2026-03-01")
    ]
    assert report["mean_vector_cosine"] == pytest.approx(mean_vector_cosine(*embeddings))

    chosen = drift_report(tmp_path, reference="2026-01-01", current="2026-02-01")
    assert chosen["flagged"] == []

    out, js = tmp_path / "report" / "drift.md", tmp_path / "report" / "drift.json"
    code = main(
        ["drift-report", "--data-dir", str(tmp_path), "--out", str(out), "--json", str(js), "--threshold", "ks=0.5"]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "FLAGGED" in printed and "profile_pc_2: PSI" in printed
    assert "KS" not in printed.split("FLAGGED", 1)[1]  # ks threshold raised to 0.5 (shift of 1 sd gives ~0.38)
    markdown = out.read_text()
    assert "## FLAGGED" in markdown and "| profile_pc_2 |" in markdown and "2026-02-01 -> 2026-03-01" in markdown
    saved = json.loads(js.read_text())
    assert saved["settings"]["ks"] == 0.5 and saved["dimensions"][2]["psi"] == pytest.approx(
        direct["dimensions"][2]["psi"]
    )
    assert saved["clusters"]["table"] == json.loads(json.dumps(direct["clusters"]["table"]))

    assert (
        main(["drift-report", "--data-dir", str(tmp_path), "--reference", "2026-01-01", "--current", "2026-02-01"]) == 0
    )
    assert "no flags (2026-01-01 -> 2026-02-01)" in capsys.readouterr().out
    # A scheduler gates on drift with --fail-above: the flagged runs exit 1, the quiet ones 0.
    flagged = len(report["flagged"])
    assert main(["drift-report", "--data-dir", str(tmp_path), "--fail-above", "0"]) == 1
    assert main(["drift-report", "--data-dir", str(tmp_path), "--fail-above", str(flagged)]) == 0
    quiet = ["--reference", "2026-01-01", "--current", "2026-02-01", "--fail-above", "0"]
    assert main(["drift-report", "--data-dir", str(tmp_path), *quiet]) == 0


def test_drift_report_names_the_folder_of_a_missing_run_or_a_changed_transform(tmp_path, capsys):
    rng = np.random.default_rng(3)
    with pytest.raises(RunNotFound, match="user_semantic"):
        drift_report(tmp_path)
    write_run(tmp_path, "user_semantic", "2026-01-01", semantic_frame(rng, 50))
    with pytest.raises(RunNotFound, match="need two runs"):
        drift_report(tmp_path)
    with pytest.raises(RunNotFound, match=r"user_semantic/run_date=2025-12-01: no such run"):
        drift_report(tmp_path, reference="2025-12-01", current="2026-01-01")
    write_run(tmp_path, "user_semantic", "2026-02-01", semantic_frame(rng, 50, transform_id="profile-refit"))
    with pytest.raises(TransformMismatch) as err:
        drift_report(tmp_path)
    assert "run_date=2026-01-01" in str(err.value) and "run_date=2026-02-01" in str(err.value)
    assert "profile-refit" in str(err.value)
    assert main(["drift-report", "--data-dir", str(tmp_path)]) == 2
    assert "profile-refit" in capsys.readouterr().err
    assert main(["drift-report", "--data-dir", str(tmp_path), "--threshold", "nope=1"]) == 2


def test_run_dates_and_the_newest_at_or_before_a_date_come_from_the_catalogue(tmp_path):
    from profile_features.catalogue import ITEM_SEMANTIC, USER_SEMANTIC, DataDir

    for run in ("2026-02-01", "2026-01-01"):
        (tmp_path / "user_semantic" / f"run_date={run}").mkdir(parents=True)
    (tmp_path / "user_semantic" / "_tmp").mkdir()  # not a partition
    data = DataDir(str(tmp_path))
    assert data.run_dates(USER_SEMANTIC) == ["2026-01-01", "2026-02-01"] and data.run_dates(ITEM_SEMANTIC) == []
    assert data.newest_run_date(USER_SEMANTIC, "2026-01-15") == "2026-01-01"
    assert data.newest_run_date(USER_SEMANTIC, "2026-02-01") == "2026-02-01"
    assert data.newest_run_date(USER_SEMANTIC, "2026-02-01", inclusive=False) == "2026-01-01"
    assert data.newest_run_date(USER_SEMANTIC, "2025-12-31") is None


# ---------------------------------------------------------------- refresh plan

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def history_row(user: str, days: list[int], tag: str = "") -> dict:
    events = [{"item_id": f"i{d}", "timestamp": (T0 + timedelta(days=d)).isoformat()} for d in days]
    return {
        "user_id": user,
        "history_hash": f"{user}-{tag or len(days)}",
        "history_length": len(days),
        "history_json": json.dumps(events),
        "last_interaction_at": T0 + timedelta(days=days[-1]),
    }


def plan_inputs():
    current = pd.DataFrame(
        [
            history_row("missing_a", [1, 2, 3, 4, 5]),
            history_row("missing_b", list(range(1, 10))),
            history_row("fallback", [1, 2, 3]),
            history_row("changed_big", [1, 2, 3, 4, 5, 6]),  # profile saw up to day 3: 3 of 6 unseen
            history_row("changed_small", [1, 2, 3, 4, 5]),  # profile saw up to day 4: 1 of 5 unseen
            history_row("changed_lost", [1, 2, 3, 4]),  # the old history run is gone: 4 - 3 = 1
            history_row("drift_hi", [1, 2]),
            history_row("drift_lo", [1, 2]),
            history_row("no_drift", [1, 2]),
            history_row("tiny_drift", [1, 2]),
        ]
    )
    earlier = pd.DataFrame([history_row("changed_big", [1, 2, 3]), history_row("changed_small", [1, 2, 3, 4])])
    profile_rows = [
        ("fallback", "fallback-3", 3, FALLBACK_GENERATOR),
        ("changed_big", "changed_big-3", 3, "openai"),
        ("changed_small", "changed_small-4", 4, "openai"),
        ("changed_lost", "changed_lost-old", 3, "openai"),
    ]
    profile_rows += [(u, f"{u}-2", 2, "openai") for u in ("drift_hi", "drift_lo", "no_drift", "tiny_drift")]
    profiles = pd.DataFrame(profile_rows, columns=["user_id", "history_hash", "history_length", "generator"])
    student = pd.DataFrame(
        {
            "user_id": ["changed_big", "changed_small", "drift_hi", "drift_lo", "no_drift", "tiny_drift", "missing_a"],
            "profile_drift": [0.2, 0.9, 0.5, 0.1, np.nan, 0.01, 0.99],
        }
    )
    return current, profiles, student, earlier


def test_refresh_plan_orders_missing_then_fallback_then_changed_by_drift_then_drift():
    current, profiles, student, earlier = plan_inputs()
    plan = plan_refresh(current, profiles, student, earlier, min_drift=0.05)
    assert plan.user_id.tolist() == [
        "missing_b",
        "missing_a",
        "fallback",
        "changed_big",
        "changed_small",
        "changed_lost",
        "drift_hi",
        "drift_lo",
    ]
    assert plan["rank"].tolist() == list(range(1, 9))
    assert (
        plan.reason.tolist() == ["missing_profile"] * 2 + ["fallback_profile"] + ["history_changed"] * 3 + ["drift"] * 2
    )
    by_user = plan.set_index("user_id")
    assert by_user.loc["changed_big", "interactions_added"] == 3 and by_user.loc["changed_big", "added_exact"]
    assert by_user.loc["changed_big", "score"] == pytest.approx(3 / 6 * (1 + 0.2))
    assert by_user.loc["changed_small", "score"] == pytest.approx(1 / 5 * (1 + 0.9))
    assert by_user.loc["changed_lost", "interactions_added"] == 1 and not by_user.loc["changed_lost", "added_exact"]
    assert by_user.loc["changed_lost", "score"] == pytest.approx(1 / 4)  # no drift known: weight 1
    assert by_user.loc["drift_hi", "score"] == 0.5 and by_user.loc["missing_b", "score"] == 9
    # tiny_drift is below min_drift, no_drift has none: not candidates; with min 0 tiny_drift comes last.
    assert plan_refresh(current, profiles, student, earlier).user_id.tolist()[-1] == "tiny_drift"


def test_budget_is_respected_exactly():
    current, profiles, student, earlier = plan_inputs()
    plan = plan_refresh(current, profiles, student, earlier)
    assert (
        budget_size(10, budget=3) == 3 and budget_size(10, fraction=0.25) == 2 and budget_size(10, fraction=1.0) == 10
    )
    assert select_budget(plan, 3).user_id.tolist() == ["missing_b", "missing_a", "fallback"]
    assert len(select_budget(plan, 0)) == 0 and len(select_budget(plan, 100)) == len(plan)
    for bad in ({"budget": 1, "fraction": 0.1}, {}, {"budget": -1}, {"fraction": 1.5}):
        with pytest.raises(ValueError):
            budget_size(10, **bad)


def test_interactions_added_counts_events_after_the_old_history():
    row = history_row("u", [1, 2, 3, 4])
    assert interactions_added(row["history_json"], T0 + timedelta(days=2)) == 2
    assert interactions_added(row["history_json"], pd.Timestamp("2026-01-03")) == 2  # naive means UTC


def test_refresh_list_rejects_empty_and_repeated_ids():
    listed = pd.DataFrame({"user_id": ["a", " b", None, "a", "", "c"], "score": range(6)})
    usable, rejects = check_refresh_list(listed, "plan.csv")
    assert usable.user_id.tolist() == ["a", "b", "c"]
    assert rejects.reason.tolist() == ["missing_user_id", "duplicate_user_id", "missing_user_id"]
    assert list(rejects.columns) == schemas.REJECTS.names and set(rejects.source_file) == {"plan.csv"}
    assert json.loads(rejects.record.iloc[1]) == {"user_id": "a", "score": 3}
    with pytest.raises(ValueError, match="plan.csv.*user_id"):
        check_refresh_list(pd.DataFrame({"user": ["a"]}), "plan.csv")


def test_fallback_label_is_the_llm_generators():
    from profile_features.profiles.llm.generator import FALLBACK_GENERATOR as LLM_FALLBACK

    assert FALLBACK_GENERATOR == LLM_FALLBACK
