"""`profile-features evaluate`: build the features on the user's data, run every ranker, write the report.

The inputs are whatever a `JobConfig` points at (the same file the Spark jobs read, LLM
generator included); `--dataset` shortcuts write a named dataset as a CSV pair first and
take the same path. The run validates the inputs (rejects counted as in production),
builds two snapshots, and evaluates on the temporal split of split.py. When the data has
too few naturally cold test users, a second pipeline run cuts the longer histories of the
test users to their first `cold_max_history` interactions (see cold_start.py) and gives
the "cold" figures; the report says which. That run measures only: it reuses the full run's
models (each snapshot's student scores the cut histories; LightGBM's settings and tree counts
and the comparison's students, `Settled`), as served models meet users with short histories.

Like LightGBM training itself, the evaluation reads the validated interactions into the
driver's memory: run it on a sample of users that fits one machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field, model_validator

from profile_features import __version__, storage
from profile_features.catalogue import INTERACTIONS, ITEMS, DataDir, Snapshot
from profile_features.config import InputsConfig, JobConfig, TableInput
from profile_features.evaluation.cold_start import truncate_histories
from profile_features.evaluation.gbdt import TUNING_GRID, column_sets, evaluate_gbdt
from profile_features.evaluation.latency import latency_rows
from profile_features.evaluation.report import slice_rows, write_report
from profile_features.evaluation.selection import recommend
from profile_features.evaluation.split import build_split, slice_sizes
from profile_features.evaluation.student_quality import (
    evaluate_student,
    ranks_per_user,
    student_ranks,
    train_comparison_students,
)
from profile_features.pipeline import (
    apply_and_materialize,
    feast_cli,
    prepare_repo,
    run_snapshots,
    run_validation,
    snapshot_cutoffs,
)
from profile_features.pipeline import log as pipeline_log
from profile_features.schemas import to_utc
from profile_features.spark.session import build_spark
from profile_features.spark.student_job import checkpoint_dir
from profile_features.strict_model import StrictModel
from profile_features.validation import local_header, preflight_inputs

__all__ = ["EvaluationConfig", "MissingExtras", "isolated_repo", "preflight", "run_evaluation"]

ML100K_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ml-100k"


class EvaluationConfig(StrictModel):
    job: JobConfig  # inputs and stage settings; data_dir is replaced by the evaluation's own folders
    dataset: str = "custom"  # the data's name in the report
    workdir: Path = Path("work/evaluate")
    out: Path | None = None  # default: <workdir>/report
    seeds: int = Field(3, gt=0)
    negatives: int = Field(50, gt=0, description="popularity-sampled negatives per user for LightGBM")
    quantiles: tuple[float, float] = (0.6, 0.8)
    valid_fraction: float = Field(
        0.2, gt=0, lt=1, description="training-window users the two-tower holds out for early stopping"
    )
    cv_folds: int = Field(5, ge=3, description="LightGBM validates every training-window user out of fold")
    tuning_settings: int = Field(
        8, gt=0, description="LightGBM settings searched per column set (the first n of gbdt.TUNING_GRID)"
    )
    harm_margin: float = Field(
        0.05, ge=0, lt=1, description="a loss beyond margin x baseline must be excluded on every slice"
    )
    cold_max_history: int = Field(5, gt=0)
    # auto: natural when at least `cold_min_users` test users are naturally cold, else truncated.
    cold_slice: Literal["auto", "natural", "truncated"] = "auto"
    cold_min_users: int = 30
    min_slice_users: int = Field(30, gt=0, description="smaller slices are reported as too small to show a lift")
    student_overrides: tuple[str, ...] = ()  # more student config overrides, e.g. "body.max_len=50"
    student_seeds: int | None = Field(None, gt=0, description="seeds of the student comparison (default: seeds)")
    two_tower: bool = True
    two_tower_epochs: int = Field(50, gt=0, description="at most; early-stopped on validation recall")
    latency_requests: int = Field(30, ge=0, description="0 skips the latency table")
    student_benchmark: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> EvaluationConfig:
        if self.job.inputs is None:
            raise ValueError(
                "evaluate needs inputs: set inputs.interactions and inputs.items in the job config (or pass --dataset)"
            )
        if not 0 < self.quantiles[0] < self.quantiles[1] < 1:
            raise ValueError(f"quantiles must be 0 < train < test < 1, got {self.quantiles}")
        return self

    @property
    def report_dir(self) -> Path:
        return self.out or self.workdir / "report"


# evaluate's own Feast settings, whatever the user's copy of the repo says: it must never read or write the
# user's data_dir, registry or online store.
_STORE_YAML = """project: profile_features_evaluation
provider: local
registry: {path: data/registry.db}
online_store: {type: sqlite, path: data/online_store.db}
offline_store: {type: duckdb}
entity_key_serialization_version: 3
"""
_SETTINGS_YAML = "data_dir: data\n"


SHIPPED_REPO = Path(__file__).resolve().parents[2] / "feature_repo"


def isolated_repo(target: Path, source: Path = SHIPPED_REPO) -> Path:
    """`source`'s definitions at `target` with evaluate's own settings: its tables, registry and online
    store all live under `target/data`, whatever `source`'s yaml files say."""

    repo = prepare_repo(source, target)
    (repo / "feature_store.yaml").write_text(_STORE_YAML)
    (repo / "profile_features.yaml").write_text(_SETTINGS_YAML)
    (repo / "feature_store.redis.yaml").unlink(missing_ok=True)
    return repo


def isolated_job(job: JobConfig, data_dir: Path, inputs: InputsConfig, student_overrides: list[str]) -> JobConfig:
    """`job` writing only under `data_dir`: the paths a job may set outside its data_dir (the profile cache,
    the profiles' dead letters, the stream's checkpoint) fall back to their defaults inside it, and a refresh
    list (`profile.only_users`) is dropped: evaluate profiles every user and never touches production state."""
    profile = job.profile.model_copy(
        update={
            "cache": job.profile.cache.model_copy(update={"path": None}),
            "dead_letter_path": None,
            "only_users": None,
        }
    )
    student = job.student.model_copy(update={"overrides": [*job.student.overrides, *student_overrides]})
    return job.model_copy(
        update={
            "data_dir": str(data_dir),
            "inputs": inputs,
            "student": student,
            "profile": profile,
            "stream": job.stream.model_copy(update={"checkpoint": None}),
        }
    )


def _build(
    config: EvaluationConfig, name: str, inputs: InputsConfig, cutoffs, log, students: list[str] | None = None
) -> tuple[Path, JobConfig, dict]:
    """An isolated repo at <workdir>/<name>, validation and both snapshots run into it, feast apply.

    `students`: one checkpoint per cutoff that scores that snapshot instead of a student trained on it.
    """

    repo = isolated_repo(config.workdir.resolve() / name / "repo")
    job = isolated_job(config.job, repo / "data", inputs, config.student_overrides)
    student = job.student
    spark = build_spark(job.spark)
    validation = run_validation(spark, job)
    cutoffs = cutoffs or _cutoffs(job, config.quantiles)
    if students:
        snapshots = [
            run_snapshots(
                spark, job.model_copy(update={"student": student.model_copy(update={"checkpoint": path})}), [cutoff]
            )[0]
            for cutoff, path in zip(cutoffs, students, strict=True)
        ]
    else:
        snapshots = run_snapshots(spark, job, cutoffs)
    log("feast apply")
    feast_cli(repo, "apply")
    return repo, job, {"validate": validation, "snapshots": snapshots, "cutoffs": cutoffs}


def dataset_hash(inputs: InputsConfig) -> str:
    """sha256 over the input files' names and bytes (directories: every file, sorted), streamed."""
    from pyarrow import fs

    digest = hashlib.sha256()
    for table in (inputs.interactions, inputs.items):
        filesystem, root = storage.filesystem(table.path)
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.Directory:
            infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
            files = sorted(i.path for i in infos if i.type == fs.FileType.File)
        else:
            files = [root]
        for path in files:
            digest.update(path.rsplit("/", 1)[-1].encode())
            with filesystem.open_input_stream(path) as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def provenance(config: EvaluationConfig, job: JobConfig, snapshots: list[dict]) -> dict:
    """What produced the report's figures, from the runs' own summaries (the newest snapshot)."""

    last = snapshots[-1]
    profiles, encoder = last["profiles"], last["embeddings"]["encoder"]
    facts = {
        "profile-features": __version__,
        "dataset": f"{config.dataset} (inputs sha256 {dataset_hash(config.job.inputs)})",
        "snapshots": ", ".join(s["histories"]["run_date"] for s in snapshots),
        "encoder": f"{encoder.get('name') or 'torch'} ({encoder.get('backend')} {encoder.get('precision')})",
        "generator": profiles["generator"],
        "model": profiles["model"],
        "prompt version": profiles["prompt_version"],
    }
    for kind, info in last["semantic"]["transforms"].items():
        facts[f"{kind} transform"] = info["transform_id"]
    student = last.get("train_student")
    if student:
        facts["student checkpoint"] = student.get("checkpoint_id")
    facts["seeds"] = config.seeds
    return facts


def _validated(job: JobConfig) -> tuple[pd.DataFrame, pd.DataFrame]:

    data = DataDir(job.data_dir)
    interactions = pd.read_parquet(data.root(INTERACTIONS))
    interactions["timestamp"] = to_utc(interactions["timestamp"])
    return interactions, pd.read_parquet(data.root(ITEMS))


def _cutoffs(job: JobConfig, quantiles):

    interactions, _ = _validated(job)
    cutoffs = snapshot_cutoffs(interactions.timestamp, quantiles)
    if len(cutoffs) != 2:
        raise ValueError(f"quantiles {quantiles} give the same day; the data spans too short a time for this split")
    return cutoffs


@dataclass(frozen=True)
class Settled:
    """What the full run decided, reused by the cold run, whose figures are test-only: LightGBM's settings
    and per-seed tree counts, and the comparison's students with the interactions they were trained on
    (they rank the cold users from their cut histories, as a served model meets a user with a short one)."""

    lightgbm_params: dict[str, dict]
    student_checkpoints: dict[str, list] | None
    interactions: pd.DataFrame


@dataclass(frozen=True)
class RankerRuns:
    """What `_rankers` measured on one built repo."""

    results: pd.DataFrame  # slice means: model, variant, seed, slice, metric, value, users
    per_user: pd.DataFrame  # model, variant, seed, slice, metric, user_id, value (report.slice_rows)
    valid: dict[str, pd.DataFrame]  # ranker -> per-user validation values (variant, seed, user_id, value)
    details: dict
    settled: Settled


def _rankers(
    config: EvaluationConfig,
    repo: Path,
    job: JobConfig,
    interactions,
    items,
    split,
    slices,
    log,
    settled: Settled | None = None,
) -> RankerRuns:
    """LightGBM, two-tower and the student against its baselines on one built repo (with `settled`: nothing
    tuned, cross-validated or trained for the students again; see `Settled`)."""
    from feast import FeatureStore

    seeds = range(config.seeds)
    seconds, started = {}, time.monotonic()
    gbdt = evaluate_gbdt(
        FeatureStore(repo_path=str(repo)),
        interactions,
        items.item_id.to_numpy(),
        split,
        seeds,
        config.negatives,
        slices=slices,
        sets=column_sets(job.semantic.components, job.semantic.sid_levels),
        folds=config.cv_folds,
        grid=TUNING_GRID[: config.tuning_settings],
        log=log,
        settled=settled.lightgbm_params if settled else None,
    )
    seconds["lightgbm"], started = time.monotonic() - started, time.monotonic()
    frames = [gbdt.test]
    per_user = [slice_rows(gbdt.test_per_user, "lightgbm", "ndcg@10", slices)]
    valid = {"lightgbm": gbdt.valid}
    if config.two_tower:
        from profile_features.evaluation.rankers.two_tower import SELECT_METRIC, evaluate_two_tower

        towers = evaluate_two_tower(
            repo,
            interactions,
            split.train_cutoff,
            split.test_cutoff,
            split.end,
            seeds,
            slices=slices,
            epochs=config.two_tower_epochs,
            valid_users=split.valid_users,
            log=log,
        )
        frames.append(towers.test)
        per_user.append(slice_rows(towers.test_per_user, "two_tower", SELECT_METRIC, slices))
        valid["two_tower"] = towers.valid
        seconds["two_tower"], started = time.monotonic() - started, time.monotonic()
    data_dir = Path(job.data_dir)
    student_slices = {name: users for name, users in slices.items() if name != "new"}  # students need a history
    checkpoints, trained_on = None, interactions
    if job.student.enabled:
        if settled and settled.student_checkpoints:
            log("student against most-popular and plain SASRec: the full run's students on the cut histories")
            checkpoints, trained_on = settled.student_checkpoints, settled.interactions
        else:
            log("student against most-popular and plain SASRec (same schedule)")
            checkpoints = train_comparison_students(
                data_dir,
                interactions,
                split.test_cutoff,
                job.student.config,
                job.student.overrides,
                range(config.student_seeds or config.seeds),
                repo.parent / "students",
                log=log,
            )
        from profile_features.student.config import load_student_config

        # The guard's question, so validation and test agree on what "better" means.
        targets = load_student_config(job.student.config, list(job.student.overrides)).guard.targets_per_user
        ranked = student_ranks(data_dir, trained_on, split.test_cutoff, split.end, checkpoints, targets)
        frames.append(
            evaluate_student(data_dir, trained_on, split.test_cutoff, split.end, slices=student_slices, ranked=ranked)
        )
        per_user.append(slice_rows(ranks_per_user(*ranked), "student", "ndcg@10", student_slices))
        seconds["student comparison"] = time.monotonic() - started
    return RankerRuns(
        pd.concat(frames, ignore_index=True),
        pd.concat(per_user, ignore_index=True),
        valid,
        {"lightgbm_params": gbdt.params, "phase_seconds": seconds},
        Settled(gbdt.params, checkpoints, trained_on),
    )


def _recommendation(valid: pd.DataFrame, slices: dict[str, list[str]], counts: dict[str, int], min_users: int, **kw):
    """The variant to serve, chosen on the per-user validation values; `slices` must not be harmed."""

    if valid.empty:
        return None
    return recommend(valid, counts, slices, min_users=min_users, **kw)


class MissingExtras(RuntimeError):
    """A package evaluate imports is not installed (the message names the install line)."""


def preflight(config: EvaluationConfig) -> None:
    """Fail in the first seconds, before any Spark work: the extras evaluate imports, and the inputs.

    Raises:
        MissingExtras: naming the missing modules and the install line.
        FileNotFoundError: naming the missing input.
        InputSchemaError: a header that lacks a mapped or required column, naming the file (local inputs;
            remote ones are checked when Spark reads them).
    """
    import importlib

    needed = ["pyspark", "feast", "lightgbm", "matplotlib", "sklearn"]
    if config.two_tower or config.job.student.enabled:
        needed.append("torch")
    missing = []
    for name in needed:
        try:
            importlib.import_module(name)  # seconds, and the run imports them anyway
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtras(
            f"evaluate needs {', '.join(missing)}, which this environment lacks: "
            "pip install 'profile-features[evaluation,demo]' (or `make install` in a clone)"
        )

    for name in ("interactions", "items"):
        path = getattr(config.job.inputs, name).path
        if not storage.exists(path):
            raise FileNotFoundError(f"evaluate: inputs.{name}.path {path!r} does not exist")
    preflight_inputs(config.job.inputs, local_header, only_local=True)  # headers and the column mapping


def run_evaluation(config: EvaluationConfig, log: Callable[[str], None] | None = None) -> Path:
    """Run the evaluation and write the report; returns the path of report.md."""
    from feast import FeatureStore

    log = log or pipeline_log
    phases, started = {}, time.monotonic()
    preflight(config)
    for name in ("full", "cold"):  # evaluate's own folders start empty: no earlier run's tables or transforms
        folder = config.workdir.resolve() / name
        if folder.exists():
            log(f"removing the previous run's {folder}")
            shutil.rmtree(folder)
    phases["preflight"], started = time.monotonic() - started, time.monotonic()
    repo, job, built = _build(config, "full", config.job.inputs, None, log)
    phases["pipeline (validate, 2 snapshots, feast apply)"] = time.monotonic() - started
    cutoffs = built["cutoffs"]
    interactions, items = _validated(job)
    end = interactions.timestamp.max() + timedelta(seconds=1)
    split = build_split(interactions, tuple(cutoffs), end, config.valid_fraction, config.cold_max_history)
    natural = split.slices["cold"]
    mode = config.cold_slice
    if mode == "auto":
        mode = "natural" if len(natural) >= config.cold_min_users else "truncated"
    sizes = slice_sizes(split)
    log(
        f"evaluation on {config.dataset}: {len(interactions)} interactions, {interactions.user_id.nunique()} users; "
        f"test users {len(split.test_users)}: {sizes['all']} with a history, {sizes['new']} new; "
        f"LightGBM validation (out of fold): {len(split.fit_users) + len(split.valid_users)} training-window users "
        f"({', '.join(f'{len(v)} {k}' for k, v in split.train_slices.items())}); cold slice: {mode}"
    )
    full_slices = {name: users for name, users in split.slices.items() if mode == "natural" or name != "cold"}
    runs = _rankers(config, repo, job, interactions, items, split, full_slices, log)
    results, per_user, details = runs.results, runs.per_user, runs.details
    phases |= details.pop("phase_seconds")
    started = time.monotonic()
    sets = column_sets(job.semantic.components, job.semantic.sid_levels)
    min_users = config.min_slice_users
    recommendation = _recommendation(
        runs.valid["lightgbm"],
        split.train_slices,
        {k: len(v) for k, v in sets.items()},
        min_users,
        harm_margin=config.harm_margin,
    )
    tower_recommendation = None
    if "two_tower" in runs.valid:
        from profile_features.evaluation.rankers.two_tower import VARIANTS

        baseline, semantic = VARIANTS  # a set with the semantic inputs has more columns
        tower_recommendation = _recommendation(
            runs.valid["two_tower"],
            {"returning": split.valid_slices["all"], "new": split.valid_slices["new"]},
            {baseline: 0, semantic: 1},
            min_users,
            harm_margin=config.harm_margin,
            baseline=baseline,
            otherwise="keep the two-tower's ID-only inputs",
        )
    cold_users = natural
    if mode == "truncated":
        counts = split.history_counts
        long_history = sorted(counts[counts > config.cold_max_history].index)
        cut = truncate_histories(interactions, long_history, split.test_cutoff, keep=config.cold_max_history)
        log(
            f"cold run: {len(long_history)} test users' histories cut to their first {config.cold_max_history} "
            f"interactions ({len(interactions) - len(cut)} interactions removed)"
        )
        raw = config.workdir.resolve() / "cold" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        cut.to_parquet(raw / "interactions.parquet", index=False)
        items.to_parquet(raw / "items.parquet", index=False)
        cold_inputs = InputsConfig(
            interactions=TableInput(path=str(raw / "interactions.parquet")),
            items=TableInput(path=str(raw / "items.parquet")),
        )
        students = [checkpoint_dir(job, Snapshot(job.data_dir, cutoff)) for cutoff in cutoffs]
        cold_repo, cold_job, _ = _build(
            config, "cold", cold_inputs, cutoffs, log, students if job.student.enabled else None
        )
        phases["cold run: features from the cut histories"] = time.monotonic() - started
        cold_users = sorted(set(natural) | set(long_history))
        cold_split = build_split(cut, tuple(cutoffs), end, config.valid_fraction, config.cold_max_history)
        cold = _rankers(
            config, cold_repo, cold_job, cut, items, cold_split, {"cold": cold_users}, log, settled=runs.settled
        )
        results = pd.concat([results, cold.results], ignore_index=True)
        per_user = pd.concat([per_user, cold.per_user], ignore_index=True)
        phases |= {f"cold run: {name}": value for name, value in cold.details["phase_seconds"].items()}
    sizes["cold"] = len(cold_users)

    latency, started = None, time.monotonic()
    if config.latency_requests:
        apply_and_materialize(repo, end=split.test_cutoff + timedelta(seconds=1))
        latency = latency_rows(
            FeatureStore(repo_path=str(repo)),
            "sqlite",
            split.test_users,
            items.item_id.to_numpy(),
            [100, 1000],
            config.latency_requests,
        )
        phases["latency"] = time.monotonic() - started
    validate = built["validate"]["tables"]
    rejected = ", ".join(f"{table} {counts['rejected']} of {counts['read']}" for table, counts in validate.items())
    context = {
        "dataset": f"{config.dataset} ({len(interactions)} interactions, {interactions.user_id.nunique()} users, "
        f"{len(items)} items after validation; rejected: {rejected})",
        "profiles": f"{job.profile.generator} generator",
        "split": f"snapshots at {', '.join(f'{c:%Y-%m-%d}' for c in cutoffs)} (quantiles {config.quantiles}); rankers "
        f"train on users active between them with the first snapshot's features. LightGBM validates every one of "
        f"them out of fold ({config.cv_folds} folds by user: each fold scored by a model fitted on the others and "
        "early-stopped on one of them); its column set is chosen on all of them and must not risk harm to the "
        f"returning, new or cold ones ({', '.join(f'{len(v)} {k}' for k, v in split.train_slices.items())}). The "
        f"two-tower early-stops on the last {config.valid_fraction:.0%} of them to arrive. Rankers are tested on "
        "users active after the second snapshot; every comparison is paired over users and seeds, with a 95% "
        "interval",
        "slices": "all: test users with at least one interaction before the test cutoff; new: test users without "
        "(no profile can exist, only item-side columns apply); cold: "
        + (
            f"natural, test users with 1-{config.cold_max_history} interactions before the cutoff"
            if mode == "natural"
            else f"truncated, a second pipeline run in which every test user with more than "
            f"{config.cold_max_history} interactions before the test cutoff keeps only the first "
            f"{config.cold_max_history} (plus the naturally cold). Its features are rebuilt from the cut histories "
            "with the full run's models, as served models meet users with short histories: each snapshot's student "
            "scores that snapshot, LightGBM refits with the full run's settings and tree counts, and the student "
            "comparison's models rank the cut histories"
        ),
        "seeds": f"{config.seeds} (LightGBM: negatives and model seed, settings tuned on the first; two-tower: "
        f"initialisation and batches; students: initialisation and batches)",
        "student": "the pipeline's checkpoint, whatever its deployment guard shipped (student/guard.py: the richest "
        "variant that passes against what would ship instead (better than most-popular and than plain SASRec), "
        "on the items after a validation cutoff inside the training period), that variant retrained on the other "
        "seeds (the popularity prior, if that shipped), and plain SASRec without the trending prior, each seed "
        "repeating the run the guard validated for that variant, ranking all items for each test user's first "
        "items after the test cutoff (the "
        "guard's targets_per_user, 5 by default; a user's NDCG@10 is the mean over them), as the guard validates",
    }
    details |= {
        "dataset": config.dataset,
        "cutoffs": [c.isoformat() for c in cutoffs],
        "validation": validate,
        "student_training": [s.get("train_student") for s in built["snapshots"]],
        "phase_seconds": {name: round(value, 1) for name, value in phases.items()},
    }
    student_benchmark = json.loads(config.student_benchmark.read_text()) if config.student_benchmark else None
    report = write_report(
        config.report_dir,
        results,
        context,
        per_user=per_user,
        latency=latency,
        student_benchmark=student_benchmark,
        recommendation=recommendation.as_dict() if recommendation else None,
        slices=sizes,
        details=details,
        min_users=min_users,
        tower_recommendation=tower_recommendation.as_dict() if tower_recommendation else None,
        provenance=provenance(config, job, built["snapshots"]),
    )
    log(f"report: {report} (and report.html)")
    return report
