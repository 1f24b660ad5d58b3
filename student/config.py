"""Student configuration: frozen pydantic v2 models loaded from one YAML file.

The YAML mirrors `StudentConfig`; unknown keys are errors. `load_student_config(path,
overrides)` accepts `dotted.key=value` overrides (values parsed as YAML scalars), so a
benchmark or CLI can change one knob without a second file. Facts discovered at run time
(item count, profile width) are not config: they live in `student.checkpoint.DataStats`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from profile_features.safe_yaml import load_yaml

__all__ = [
    "StrictModel",
    "BodyConfig",
    "PoolingConfig",
    "HeadConfig",
    "ItemViewsConfig",
    "DistillConfig",
    "NeighbourDistillConfig",
    "TrainConfig",
    "GuardConfig",
    "StudentConfig",
    "apply_overrides",
    "load_student_config",
]


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BodyConfig(StrictModel):
    """SASRec body: item + position embeddings and causal transformer blocks."""

    hidden_size: int = Field(64, gt=0)
    num_blocks: int = Field(2, gt=0)
    num_heads: int = Field(1, gt=0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_len: int = Field(200, gt=0)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "BodyConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        return self


class PoolingConfig(StrictModel):
    """How the user representation fed to distillation is pooled from hidden states.

    `layer` indexes the block outputs (-1 = last block, 0 = first). `each` does not pool during
    training: every prefix state is asked to predict the user's profile (its future included),
    and the newest state is the pooled vector at serving time.
    """

    kind: Literal["mean", "last", "exp", "each"] = "mean"
    layer: int = -1
    # Weight of position t in "exp" pooling is decay ** (steps before the newest item).
    decay: float = Field(0.9, gt=0.0, le=1.0)


class HeadConfig(StrictModel):
    """Next-item head: softmax over all items, or over sampled items once the catalogue is larger.

    Training scores each position against its target and at most `negatives` other items: the
    whole catalogue when it has no more items than that (exact softmax), else that many items
    sampled uniformly per batch with the log(catalogue / negatives) correction (sampled softmax,
    Jean et al. 2015). Cost per position is then bounded, so an epoch grows with interactions,
    not interactions x catalogue. None: always the full catalogue. Ranking is always over all items.
    """

    tied: bool = True
    negatives: int | None = Field(2048, ge=1)


class ItemViewsConfig(StrictModel):
    """How an item is represented: its ID embedding, an adapter over its frozen text embedding
    (the "dual view" of LLM-ESR, Liu et al. 2024), and embeddings of its semantic-ID codes (residual
    k-means of the text embedding, TIGER-style: items sharing a code share that parameter).

    Items training never saw have no trained ID embedding: they get the semantic views alone, so the
    student can rank new items. `id_dropout` hides the ID view of that fraction of items in each batch
    (as inputs and as targets), so the semantic-only path new items take is trained, not extrapolated.
    """

    id: bool = True
    # The items' text embeddings (the embedding job's item_text_embeddings). auto: on when the training data
    # brings them (the pipeline always does; `python -m profile_features.student.train` with --items) and the
    # head is tied.
    text: bool | Literal["auto"] = "auto"
    sid: bool = False  # needs the items' semantic-ID codes (the semantic job's item_sid_*)
    # sum: id + text + sid; gated: a learned per-dimension gate between the ID view and the semantic
    # views; concat: a linear projection of the views side by side.
    fusion: Literal["sum", "gated", "concat"] = "sum"
    adapter_hidden: int | None = Field(None, gt=0)  # None: a linear adapter; else a two-layer MLP
    # pca: a linear adapter starts as the projection onto the text vectors' top-H principal directions,
    # so item vectors start out as close as their texts are (and training moves them from there);
    # random: the usual random start.
    adapter_init: Literal["pca", "random"] = "pca"
    id_dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @property
    def semantic(self) -> bool:
        """Whether the student may read item content (text on or auto, or semantic IDs)."""
        return self.text is not False or self.sid

    @model_validator(mode="after")
    def _some_view(self) -> "ItemViewsConfig":
        if not (self.id or self.text is True or self.sid):
            raise ValueError("items: enable at least one of id, text, sid (text: true, not auto, without id)")
        return self


class DistillConfig(StrictModel):
    """Distillation of the profile embedding into the student.

    `published` settings (Severin et al.): direction=profile_to_hidden, loss=mse,
    target_transform=none, beta=dynamic, beta_max=None, alpha=0.4, distill_fraction=0.5.
    """

    enabled: bool = True
    # profile_to_hidden: a trainable linear layer maps the profile into hidden space (published);
    # the profile-space readout is then fitted after training by ridge regression.
    # hidden_to_profile: a head maps the pooled student state into (transformed) profile space.
    direction: Literal["profile_to_hidden", "hidden_to_profile"] = "hidden_to_profile"
    # none | center (subtract mean profile) | standardize (per dim) | whiten (PCA whitening).
    target_transform: Literal["none", "center", "standardize", "whiten"] = "center"
    whiten_dim: int | None = Field(None, gt=0)
    loss: Literal["mse", "cosine", "infonce"] = "infonce"
    temperature: float = Field(0.1, gt=0.0)
    # Defaults: the best distilled variant measured on ml-100k (`light_early` in BENCHMARKS.md):
    # a light weight for a short first phase; heavier or longer distillation cost next-item quality.
    alpha: float = Field(0.1, ge=0.0, le=1.0)
    # dynamic: beta = L_rec / L_distil per batch (detached); first_batch: that ratio frozen
    # after the first batch; fixed: beta = beta_value.
    beta: Literal["dynamic", "first_batch", "fixed"] = "fixed"
    beta_value: float = Field(1.0, gt=0.0)
    beta_max: float | None = Field(None, gt=0.0)
    # Distillation runs for the first `distill_fraction` of the epochs, then L_rec alone.
    distill_fraction: float = Field(0.3, ge=0.0, le=1.0)
    # Ridge penalty for the post-hoc readout (profile_to_hidden) from pooled state to profile.
    readout_ridge: float = Field(1.0, ge=0.0)


class NeighbourDistillConfig(StrictModel):
    """Retrieval-augmented self-distillation (LLM-ESR): a user's representation is pulled toward the
    mean representation of the users whose LLM profiles are most similar (cosine of centred profile
    embeddings, found among the users of the same training chunk). The neighbours' representations
    are the model's own, taken without gradient at the start of each chunk's pass.

    `max_history`: only rows whose (possibly cropped) training input has at most this many items are
    pulled (None: every row); short histories are where the neighbours know more than the history.
    """

    enabled: bool = False
    neighbours: int = Field(10, gt=0)
    weight: float = Field(0.1, ge=0.0)
    max_history: int | None = Field(None, gt=0)


class TrainConfig(StrictModel):
    """Optimisation and early stopping."""

    epochs: int = Field(200, gt=0)
    batch_size: int = Field(128, gt=0)
    # Small data gets smaller batches, so an epoch has at least this many optimiser steps: with 128
    # users a batch, ml-100k's 650 training users made 5 steps an epoch, and patience (counted in
    # epochs) stopped plain SASRec before it passed most-popular (post-cutoff test NDCG@10 0.0167 at
    # batch 128 vs 0.0347 at 32, seed 0). Batches never go below 8 users.
    min_steps_per_epoch: int = Field(20, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float | None = Field(5.0, gt=0.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(2, gt=0)
    # Validation every `eval_every` epochs; stop after `patience` evaluations without a gain above
    # `min_delta`; the best weights are kept. Every 2 epochs, 4 evaluations: a run ends 8 epochs after
    # its last real gain (it was 30: on small data most of a run was that tail; validation of at most
    # `max_valid_users` users costs less than an epoch).
    eval_every: int = Field(2, gt=0)
    patience: int | None = Field(4, gt=0)
    # Patience counts from this epoch on: the first epochs' validation is noisy (a lucky early score
    # stopped a seed of plain SASRec at epoch 10 on amazon-digital-music, below most-popular).
    min_epochs: int = Field(20, ge=1)
    # Evaluation metric that picks the best epoch.
    select_metric: Literal["ndcg@10", "hr@10", "mrr"] = "ndcg@10"
    # Validation users evaluated per check (a seeded sample when there are more): bounds its cost.
    max_valid_users: int = Field(20_000, gt=0)
    # Patience restarts only when validation improves by more than this fraction of the best so far:
    # gains smaller than that are noise on small validation sets, and chasing them is most of a long run.
    min_delta: float = Field(0.01, ge=0.0)
    # Short-history augmentation: each training row is, with this probability, cut to its newest
    # m + 1 items, m drawn log-uniformly from 1..its length, so short inputs are trained, not only
    # the prefixes of long ones (whose positions carry their left context).
    crop_prob: float = Field(0.0, ge=0.0, le=1.0)


class GuardConfig(StrictModel):
    """What the pipeline ships, decided the way the model is used (student/guard.py).

    A validation cutoff is put inside the training period so that `valid_fraction` of the
    interactions before the training cutoff fall after it. Every candidate trains on what lies
    before it (best epoch by validation) and is scored, for each user with items on both sides, on
    the first `targets_per_user` items after it, ranked over the whole catalogue (NDCG@10 per user, the
    mean over its targets), like evaluate's test. Candidates, richest first: the configured student,
    the same without item content (text / semantic-ID views), plain SASRec (no content, no
    distillation); then most-popular, whose counts are weighted by age where that ranks the validation
    items better (student/popularity.py), as baseline and as the prior that ships.
    The first candidate that is better than most-popular (`popular_needs_gain`) and, when plain SASRec itself
    passes against most-popular, better than plain SASRec (`richer_needs_gain`), on all validation users (and not
    worse on those with short histories), ships, refitted on everything before the training cutoff for its
    validated number of epochs.

    "Not worse": a non-inferiority test on the paired per-user differences: the one-sided
    `confidence` lower bound of the mean difference must be at least -`margin` x the baseline's mean,
    over at least `min_users` users. It fails when validation has too little power to bound the harm
    (few users, noisy differences), so the guard then falls back to the simpler model: shipping a
    model needs evidence, and keeping the simpler one needs none.
    """

    enabled: bool = True  # false: train the configured student alone, epochs picked on the same validation
    valid_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    # Each validation user's first items after the validation cutoff, averaged per user: the "next
    # items" question, and five targets where a user has them cut the per-user noise that left ml-100k's
    # 91 validation users unable to tell a +76% gain from harm with one target each.
    targets_per_user: int = Field(5, gt=0)
    # Validation users with at most this many interactions before the validation cutoff (evaluate's cold slice:
    # its cold_max_history) are checked again on their own when they are at least `min_users` and at most half
    # of the validation users: lastfm-tags' distilled student passed overall and lost 7.9% to plain SASRec on its
    # cold test users. 0: no slice check.
    short_history: int = Field(5, ge=0)
    # Weights of the trending prior added to each candidate's scores: w x log(1 + the validated most-popular's
    # counts), w picked on validation among these and kept when its gain over none is shown
    # (guard._with_trending_prior); the same weight times the counts at the training cutoff is added to the shipped
    # student's item biases. On ml-100k what people rate next is what
    # was just released, which SASRec cannot know (most-popular with an 8-day half-life was 2-4x every student
    # trained there). The largest weights let popularity lead and the student reorder within it (ml-100k's
    # validation picked the largest weight of a grid that stopped at 2, still far below most-popular). Empty: none.
    prior_weights: list[Annotated[float, Field(gt=0.0)]] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    confidence: float = Field(0.9, gt=0.5, lt=1.0)
    margin: float = Field(0.05, ge=0.0, lt=1.0)
    # A richer candidate (item content, distillation) replaces plain SASRec only when its gain is shown (lower
    # bound above zero), not merely when harm beyond `margin` is excluded: level with plain SASRec on
    # validation, amazon-digital-music's configured student shipped and could not be shown not worse on test
    # (-0.2%, harm down to -11% not excluded); the simpler model needs no evidence. false: non-inferiority.
    richer_needs_gain: bool = True
    # A trained model replaces the popularity prior only when its gain over most-popular is shown, as a richer
    # candidate must show its gain over plain SASRec. With non-inferiority (false: the bound above -`margin` x
    # most-popular's mean), sample-noisy's guard shipped plain SASRec at 12 of 12 rolling-origin runs and it scored
    # 2.7% [0.8%, 4.7%] below most-popular on test; with the gain rule the prior ships there and ties it, while
    # amazon-digital-music keeps its students (BENCHMARKS "Rolling origin").
    popular_needs_gain: bool = True
    min_users: int = Field(20, gt=1)
    # Training users are held in memory (no Parquet read per pass) when they have at most this many
    # interactions; larger data streams from Parquet a chunk at a time.
    cache_interactions: int = Field(5_000_000, ge=0)
    # Epochs of the plain model behind the popularity prior when no user is active on both sides of the
    # validation cutoff (nothing to select epochs on).
    unvalidated_epochs: int = Field(10, gt=0)


class StudentConfig(StrictModel):
    """Everything that defines a student run."""

    name: str = "student"
    body: BodyConfig = BodyConfig()
    pooling: PoolingConfig = PoolingConfig()
    head: HeadConfig = HeadConfig()
    items: ItemViewsConfig = ItemViewsConfig()
    distill: DistillConfig = DistillConfig()
    neighbours: NeighbourDistillConfig = NeighbourDistillConfig()
    train: TrainConfig = TrainConfig()
    guard: GuardConfig = GuardConfig()

    @model_validator(mode="after")
    def _semantic_views_score_items(self) -> "StudentConfig":
        if (self.items.text is True or self.items.sid) and not self.head.tied:
            raise ValueError("items.text / items.sid need head.tied=true: new items are scored by their representation")
        return self

    @property
    def content_views(self) -> ItemViewsConfig:
        """The item views this run may read: `text: auto` is off when the head is untied (an untied head
        scores with its own matrix, so new items could not be scored by their text)."""
        if self.items.text == "auto" and not self.head.tied:
            return self.items.model_copy(update={"text": False})
        return self.items


def _parse_scalar(text: str) -> Any:
    return load_yaml(text, f"override value {text[:40]!r}") if text.strip() else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides to a raw (dict) config.

    Args:
        raw: Config as loaded from YAML (not mutated).
        overrides: Strings like `train.epochs=10` or `distill.enabled=false`.

    Returns:
        A new dict with the overrides applied.
    """
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override must be key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r} goes through a non-mapping value")
        node[parts[-1]] = _parse_scalar(value)
    return out


def load_student_config(path: str | Path | None = None, overrides: list[str] | None = None) -> StudentConfig:
    """Load a `StudentConfig` from YAML (or defaults when `path` is None) plus overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = load_yaml(Path(path).read_text(), str(path)) or {}  # refuses alias bombs before they expand
    return StudentConfig.model_validate(apply_overrides(raw, overrides))
