"""`profile-features evaluate`: build the features, run every ranker, write the report.

One full pipeline run gives the "all users" figures. When the data has too few
naturally cold test users (ml-100k has one), a second run cuts the longer
histories of the test users to their first `cold_max_history` interactions
(see cold_start.py) and gives the "cold" figures; the report says which.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from profile_features.config import SampleConfig
from profile_features.strict_model import StrictModel

__all__ = ["EvaluationConfig", "run_evaluation"]

ML100K_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ml-100k"


class EvaluationConfig(StrictModel):
    dataset: Literal["sample", "ml-100k"] = "sample"
    sample: SampleConfig = SampleConfig()
    ml100k_path: Path = ML100K_DEFAULT
    workdir: Path = Path("work/evaluate")
    out: Path = Path("work/evaluate/report")
    seeds: int = Field(3, gt=0)
    negatives: int = Field(50, gt=0, description="popularity-sampled negatives per user for LightGBM")
    quantiles: tuple[float, float] = (0.6, 0.8)
    cold_max_history: int = Field(5, gt=0)
    # auto: natural when at least `cold_min_users` test users are naturally cold, else truncated.
    cold_slice: Literal["auto", "natural", "truncated"] = "auto"
    cold_min_users: int = 30
    student_epochs: int = Field(30, gt=0)
    student_overrides: tuple[str, ...] = ()  # more student config overrides, e.g. "body.max_len=50"
    two_tower: bool = True
    two_tower_epochs: int = Field(10, gt=0)
    latency_requests: int = Field(30, ge=0, description="0 skips the latency table")
    student_benchmark: Path | None = None


def _load(config: EvaluationConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    from profile_features.datasets import generate_sample, load_ml100k

    if config.dataset == "ml-100k":
        return load_ml100k(config.ml100k_path)
    sample = generate_sample(config.sample)
    return sample.interactions, sample.items


def _rankers(config: EvaluationConfig, repo: Path, interactions: pd.DataFrame, items: pd.DataFrame, cutoffs,
             end, cold_users, log) -> pd.DataFrame:
    """LightGBM ablation, two-tower and the student's own quality on one built repo."""
    from feast import FeatureStore

    from profile_features.evaluation.gbdt import evaluate_gbdt
    from profile_features.evaluation.student_quality import evaluate_student
    from profile_features.feast.settings import load_feast_settings

    train_cutoff, test_cutoff = cutoffs
    seeds = range(config.seeds)
    store = FeatureStore(repo_path=str(repo))
    frames = [evaluate_gbdt(store, interactions, items.item_id.to_numpy(), train_cutoff, test_cutoff, end, seeds,
                            config.negatives, cold_users, log=log)]
    if config.two_tower:
        from profile_features.evaluation.two_tower import evaluate_two_tower

        frames.append(evaluate_two_tower(repo, interactions, train_cutoff, test_cutoff, end, seeds,
                                         cold_users=cold_users, epochs=config.two_tower_epochs, log=log))
    data_dir = Path(load_feast_settings(repo / "profile_features.yaml").data_dir)
    frames.append(evaluate_student(data_dir, interactions, test_cutoff, end, cold_users))
    return pd.concat(frames, ignore_index=True)


def run_evaluation(config: EvaluationConfig, log=print) -> Path:
    """Run the evaluation and write the report; returns the report's path."""
    from feast import FeatureStore

    from profile_features.evaluation.cold_start import active_users, history_counts, truncate_histories
    from profile_features.evaluation.latency import latency_rows
    from profile_features.evaluation.report import write_report
    from profile_features.pipeline import apply_and_materialize, build_feature_repo

    interactions, items = _load(config)
    overrides = [f"train.epochs={config.student_epochs}", *config.student_overrides]
    end = interactions.timestamp.max() + timedelta(seconds=1)
    log(f"evaluation on {config.dataset}: {len(interactions)} interactions, {interactions.user_id.nunique()} users")
    repo, cutoffs = build_feature_repo(interactions, items, config.workdir.resolve() / "full", config.quantiles,
                                       student_overrides=overrides)
    test_cutoff = cutoffs[-1]
    test_users = active_users(interactions, test_cutoff, end)
    counts = history_counts(interactions, test_users, test_cutoff)
    natural = sorted(counts[(counts >= 1) & (counts <= config.cold_max_history)].index)
    mode = config.cold_slice
    if mode == "auto":
        mode = "natural" if len(natural) >= config.cold_min_users else "truncated"
    log(f"test users: {len(test_users)} ({(counts == 0).sum()} with no history, {len(natural)} with "
        f"1-{config.cold_max_history} interactions); cold slice: {mode}")

    results = _rankers(config, repo, interactions, items, cutoffs, end, natural if mode == "natural" else None, log)
    cold_users = natural
    if mode == "truncated":
        long_history = sorted(counts[counts > config.cold_max_history].index)
        cut = truncate_histories(interactions, long_history, test_cutoff, keep=config.cold_max_history)
        log(f"cold run: {len(long_history)} test users' histories cut to their first {config.cold_max_history} "
            f"interactions ({len(interactions) - len(cut)} interactions removed)")
        cold_repo, _ = build_feature_repo(cut, items, config.workdir.resolve() / "cold", config.quantiles,
                                          student_overrides=overrides, cutoffs=cutoffs)
        cold_users = sorted(set(natural) | set(long_history))
        cold = _rankers(config, cold_repo, cut, items, cutoffs, end, cold_users, log)
        results = pd.concat([results, cold[cold.slice == "cold"]], ignore_index=True)

    latency = None
    if config.latency_requests:
        apply_and_materialize(repo)
        latency = latency_rows(FeatureStore(repo_path=str(repo)), "sqlite", test_users, items.item_id.to_numpy(),
                               [100, 1000], config.latency_requests)
    context = {
        "dataset": f"{config.dataset} ({len(interactions)} interactions, {interactions.user_id.nunique()} users, "
                   f"{len(items)} items)",
        "split": f"snapshots at {', '.join(f'{c:%Y-%m-%d}' for c in cutoffs)}; rankers train on users active between "
                 f"them (features of the first snapshot) and are tested on users active after the second",
        "seeds": f"{config.seeds} (LightGBM: negatives and model seed; two-tower: initialisation and batches)",
        "test users": f"{len(test_users)}: {(counts == 0).sum()} with no interaction before the cutoff (no profile "
                      f"can exist; semantic columns null), {len(natural)} naturally cold (1-{config.cold_max_history}), "
                      f"{(counts > config.cold_max_history).sum()} with a longer history",
        "cold slice": (f"natural: test users with 1-{config.cold_max_history} interactions before the test cutoff "
                       f"({len(cold_users)} users)") if mode == "natural" else
                      (f"truncated: a second pipeline run in which every test user with more than "
                       f"{config.cold_max_history} interactions before the test cutoff keeps only the first "
                       f"{config.cold_max_history} (plus the {len(natural)} naturally cold users; {len(cold_users)} "
                       f"users in all); features, student and rankers all rebuilt on that data"),
        "student": f"the pipeline's checkpoint ({config.student_epochs} epochs) ranking all items for each test "
                   f"user's next item; the seeded benchmark is benchmarks/student_quality.py",
    }
    student_benchmark = json.loads(config.student_benchmark.read_text()) if config.student_benchmark else None
    report = write_report(config.out, results, context, latency, student_benchmark)
    log(f"report: {report}")
    return report
