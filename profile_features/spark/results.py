"""What each stage returns: a frozen record with the human log lines (`describe`) and the JSON summary
(`summary`) next to the data they are made of.

`summary()` is the document an entry file prints and `<data_dir>/runs/<job>-*.json` holds: its keys
are a contract (tests, the evaluation and operators read them), so they stay as they were when the
stages returned plain dicts. Code reads a result's fields; the JSON is read through `summary()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from profile_features.encoder_backends import EncoderChoice

__all__ = [
    "StageResult",
    "ValidateResult",
    "HistoriesResult",
    "ProfilesResult",
    "EncoderInfo",
    "EmbeddingsResult",
    "TransformInfo",
    "SemanticIdInfo",
    "SemanticResult",
    "StudentTrainResult",
    "StudentScoreResult",
]

EncoderInfo = EncoderChoice  # what the executors loaded: backend, precision, export folder, name, fallback


class StageResult:
    """The interface every result has: its JSON summary and its log lines."""

    def summary(self) -> dict:
        raise NotImplementedError

    def describe(self) -> list[str]:
        """Log lines for a person following a pipeline run (indented under the stage's own line)."""
        return []


@dataclass(frozen=True)
class ValidateResult(StageResult):
    tables: Mapping[str, dict]  # per input: source, read, accepted, rejected and the counts by reason
    rules: Mapping[str, Any]
    rejects_path: str | None
    warnings: tuple[str, ...]

    def summary(self) -> dict:
        return {
            "job": "validate",
            "tables": dict(self.tables),
            "rules": dict(self.rules),
            "rejects_path": self.rejects_path,
            "warnings": list(self.warnings),
        }

    def describe(self) -> list[str]:
        return [
            f"{table}: read {c['read']} = accepted {c['accepted']} + rejected {c['rejected']} "
            f"{c['rejected_by_reason'] or ''}"
            for table, c in self.tables.items()
        ]


@dataclass(frozen=True)
class HistoriesResult(StageResult):
    cutoff: datetime
    run_date: str
    outputs: Mapping[str, str]  # histories, user_stats, item_stats -> the partitions written
    users: int
    interactions_before_cutoff: int

    def summary(self) -> dict:
        return {
            "job": "histories",
            "cutoff": self.cutoff.isoformat(),
            "run_date": self.run_date,
            "outputs": dict(self.outputs),
            "users": self.users,
            "interactions_before_cutoff": self.interactions_before_cutoff,
        }

    def describe(self) -> list[str]:
        return [f"{self.users} users, {self.interactions_before_cutoff} interactions before the cutoff"]


@dataclass(frozen=True)
class ProfilesResult(StageResult):
    """The profile run: the figures a person reads first are fields, the accounting (calls, tokens,
    retries, refresh list...) is `counts`, in the summary's own keys and order."""

    run_id: str
    run_date: str
    output: str
    users: int
    profiles: int
    generator: str
    counts: Mapping[str, Any]  # every other summary key (after `generator`), in order

    def summary(self) -> dict:
        return {
            "job": "profiles",
            "run_id": self.run_id,
            "run_date": self.run_date,
            "output": self.output,
            "histories": self.users,
            "profiles": self.profiles,
            "generator": self.generator,
            **self.counts,
        }


@dataclass(frozen=True)
class EmbeddingsResult(StageResult):
    run_date: str
    outputs: Mapping[str, str]
    profiles: int
    items: int
    encoder: EncoderInfo

    def summary(self) -> dict:
        return {
            "job": "embeddings",
            "run_date": self.run_date,
            "outputs": dict(self.outputs),
            "profiles": self.profiles,
            "items": self.items,
            "encoder": dataclasses.asdict(self.encoder),
        }

    def describe(self) -> list[str]:
        lines = [f"{self.profiles} profile vectors, {self.items} item vectors ({self.encoder.name or 'torch'})"]
        if self.encoder.fallback_reason:
            lines.append(f"embedding.backend fell back to torch: {self.encoder.fallback_reason}")
        return lines


@dataclass(frozen=True)
class TransformInfo:
    """A PCA / k-means transform as one snapshot used it."""

    transform_id: str
    fitted_now: bool
    fitted_on: str  # e.g. user_profile_embeddings/run_date=2026-05-01
    folder: str
    explained_variance: float

    def how(self) -> str:
        return "fitted now" if self.fitted_now else "reused"


@dataclass(frozen=True)
class SemanticIdInfo:
    transform_id: str
    fitted_now: bool
    fitted_on: str
    folder: str
    levels: int
    codes: int


@dataclass(frozen=True)
class SemanticResult(StageResult):
    run_date: str
    outputs: Mapping[str, str]  # user_semantic, item_semantic -> the partitions written
    transforms: Mapping[str, TransformInfo]  # by kind: profile, item
    encoder: str
    semantic_ids: SemanticIdInfo | None = None

    def summary(self) -> dict:
        summary = {
            "job": "semantic",
            "run_date": self.run_date,
            "outputs": dict(self.outputs),
            "transforms": {kind: dataclasses.asdict(info) for kind, info in self.transforms.items()},
            "encoder": self.encoder,
        }
        if self.semantic_ids is not None:
            summary["semantic_ids"] = dataclasses.asdict(self.semantic_ids)
        return summary

    def describe(self) -> list[str]:
        lines = [
            f"{kind}: transform {info.transform_id} ({info.how()}, {info.explained_variance:.0%} of variance)"
            for kind, info in self.transforms.items()
        ]
        if self.semantic_ids is not None:
            sid = self.semantic_ids
            how = "fitted now" if sid.fitted_now else "reused"
            lines.append(
                f"item semantic IDs: transform {sid.transform_id} ({how}, {sid.levels} levels x {sid.codes} codes)"
            )
        return lines


def _metric(values: Mapping | None, name: str = "ndcg@10") -> str:
    return "n/a" if not values else f"{values[name]:.4f}"


@dataclass(frozen=True)
class StudentTrainResult(StageResult):
    run_date: str
    cutoff: str
    interactions: int
    training: Mapping[str, Any]  # what `student.train.train_from_parquet` reports (checkpoint, guard, epochs...)

    def summary(self) -> dict:
        return {
            "job": "train_student",
            "run_date": self.run_date,
            "cutoff": self.cutoff,
            "interactions": self.interactions,
            **self.training,
        }

    def describe(self) -> list[str]:
        t = self.training
        guard = t.get("guard") or {}
        return [
            f"checkpoint {t['checkpoint_id']} on {t['users']} users: best epoch {t['best_epoch']}, validation "
            f"NDCG@10 {_metric(t['best_valid'])} (most popular {_metric(t['popularity_valid'])})",
            f"shipped {t.get('variant', 'configured')}: {guard.get('reason', 'no guard')}",
        ]


@dataclass(frozen=True)
class StudentScoreResult(StageResult):
    run_date: str
    checkpoint: str
    output: str
    users: int
    scored: int
    fallbacks: int
    variants: tuple[str, ...]
    with_drift: int
    item_output: str
    item_scores: Mapping[str, int]  # items, represented, seen_in_training

    def summary(self) -> dict:
        return {
            "job": "score_student",
            "run_date": self.run_date,
            "checkpoint": self.checkpoint,
            "output": self.output,
            "users": self.users,
            "scored": self.scored,
            "fallbacks": self.fallbacks,
            "variants": list(self.variants),
            "with_drift": self.with_drift,
            "item_output": self.item_output,
            "item_scores": dict(self.item_scores),
        }

    def describe(self) -> list[str]:
        return [f"{self.scored} users scored, {self.with_drift} with a profile drift"]
