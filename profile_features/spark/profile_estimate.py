"""`generate_profiles --dry-run`: what the run would send to the LLM and what it would cost.

User and history counts are exact (the same plan the run makes: cache hits, refresh list). Calls and
prompt tokens are counted on a bounded random sample of the histories to generate (`sample`, default
2,000: the model's tokenizer may be a server round trip per prompt) and scaled to the exact count,
with the standard error of that scaling. Expected output tokens per call are the mean of the newest
earlier run of the same generator and model (its summary), else `generation.max_tokens` (an upper
bound). Nothing is generated or written besides the estimate's own run summary.
"""

from __future__ import annotations

import math

from profile_features import storage
from profile_features.catalogue import RUNS, DataDir, Snapshot
from profile_features.config import JobConfig
from profile_features.histories import history_events
from profile_features.profiles import estimate
from profile_features.profiles.sanitize import sanitize_event
from profile_features.profiles.stage import renderer_for
from profile_features.spark.common import write_summary
from profile_features.spark.profile_job import plan_generation

__all__ = ["estimate_profiles"]


def _observed_tokens_per_call(config: JobConfig, key) -> tuple[float, str] | None:
    """Output tokens per call in the newest earlier run of this generator and model."""
    runs = DataDir(config.data_dir).root(RUNS)
    names = [n for n in storage.list_dir(runs) if n.startswith("profiles-") and not n.startswith("profiles-estimate-")]
    for name in sorted(names, reverse=True):  # names end in a UTC stamp: newest first
        summary = storage.read_json(storage.join(runs, name))
        same = summary.get("generator") == key[0] and summary.get("model") == key[1]
        per_call = estimate.observed_output_per_call(summary, config.profile.generation.max_tokens) if same else None
        if per_call:  # a summary's figures are untrusted: numbers within max_tokens only
            return per_call, f"mean per call in run {summary.get('run_id')}"
    return None


def _sample(plan, size: int):
    """At most `size` of the histories to generate, drawn at random (bounded, so collected)."""
    fraction = min(1.0, 1.5 * size / max(1, plan.to_generate))
    return plan.todo.select("history_json").sample(False, fraction, seed=17).limit(size).toPandas()


def estimate_profiles(spark, config: JobConfig, snapshot: Snapshot | None = None, sample: int = 2000) -> dict:
    """The dry run's estimate for the snapshot (None: the newest histories run), also written to
    `<data_dir>/runs/profiles-estimate-*.json`."""
    profile = config.profile
    plan = plan_generation(spark, config, snapshot, dry_run=True)
    observed = _observed_tokens_per_call(config, plan.key)
    per_call_out, out_source = observed or (float(profile.generation.max_tokens), "generation.max_tokens (upper bound)")
    counter = estimate.token_counter(profile) if profile.is_llm and plan.to_generate else None
    calls = prompt_tokens = stderr = 0.0
    sampled = 0
    if counter is not None:
        # Plan chunks with the counter the run itself plans with (the local tokenizer, else the estimate).
        renderer = renderer_for(profile, counter.count if profile.generator == "transformers" else None)
        clean = profile.sanitize  # the run cleans every event before rendering: so does its estimate
        costs = [
            estimate.history_cost(
                renderer, [sanitize_event(e, clean) for e in history_events(text)], counter, round(per_call_out)
            )
            for text in _sample(plan, sample).history_json
        ]
        sampled = len(costs)
        scale = plan.to_generate / max(1, sampled)
        calls = sum(c for c, _ in costs) * scale
        prompt_tokens = sum(t for _, t in costs) * scale
        if sampled > 1 and sampled < plan.to_generate:
            mean = prompt_tokens / plan.to_generate
            variance = sum((t - mean) ** 2 for _, t in costs) / (sampled - 1)
            finite = 1 - sampled / plan.to_generate  # sampling without replacement
            stderr = plan.to_generate * math.sqrt(variance / sampled * finite)
    output_tokens = calls * per_call_out
    plan.todo.unpersist()
    plan.histories.unpersist()
    summary = {
        "job": "profiles-estimate",
        "run_date": plan.run_date,
        "generator": profile.generator,
        "model": plan.key[1],
        "prompt_version": plan.key[2],
        "users": plan.users,
        "target_users": plan.target_users,
        "cache_hits": plan.target_users - plan.users_to_generate,
        "users_to_generate": plan.users_to_generate,
        "histories_to_generate": plan.to_generate,
        "sampled_histories": sampled,
        "token_counter": counter.source if counter else None,
        "calls": round(calls),
        "prompt_tokens": round(prompt_tokens),
        "prompt_tokens_stderr": round(stderr),
        "output_tokens": round(output_tokens),
        "output_tokens_per_call": round(per_call_out, 1),
        "output_tokens_source": out_source,
        "cost": estimate.price(profile, prompt_tokens, output_tokens),
        "server_models": estimate.server_models(profile) if profile.generator == "openai" else None,
        "note": "first attempts only: quality-gate regenerations and transient retries add to calls and tokens",
    }
    if summary["cost"] is None and profile.is_llm:
        summary["note"] += "; set profile.pricing (per 1M tokens in / out) for a cost"
    return write_summary(config, "profiles-estimate", summary)
