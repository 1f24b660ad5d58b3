"""The profile writers that `profile.generator` names: one registry, each entry imported only when named.

An entry builds its generator on the worker (a local model loads there, once per process) and names
its profile-cache key (generator, model, prompt version) without loading anything. The LLM backends
themselves live in `profiles/llm/`; a new one is a module there plus one entry here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from profile_features.profiles.base import ProfileGenerator
from profile_features.profiles.config import ProfileConfig
from profile_features.profiles.rule_based import RuleBasedProfileWriter

__all__ = ["Backend", "BACKENDS", "renderer_for"]


@dataclass(frozen=True)
class Backend:
    """build(config, threads, common_terms) -> generator; key(config, common_terms) -> cache key."""

    build: Callable[[ProfileConfig, int | None, frozenset[str]], ProfileGenerator]
    key: Callable[[ProfileConfig, frozenset[str]], tuple[str, str, str]]


def renderer_for(config: ProfileConfig, count_tokens=None):
    """The prompt renderer of `config` (`count_tokens`: the backend's tokenizer, else an estimate)."""
    from profile_features.profiles.llm.prompts import TEMPLATES, PromptRenderer

    return PromptRenderer(TEMPLATES[config.prompt.template], config.prompt, config.generation, count_tokens)


def _rule_based(config: ProfileConfig, threads: int | None, common_terms: frozenset[str]) -> ProfileGenerator:
    return RuleBasedProfileWriter(max_titles=config.max_titles, common_terms=common_terms)


def _rule_based_key(config: ProfileConfig, common_terms: frozenset[str]) -> tuple[str, str, str]:
    # The writer's texts depend on the catalogue's common terms, so their hash is part of its key.
    writer = RuleBasedProfileWriter(max_titles=config.max_titles)
    version = f"{writer.prompt_version}+titles{config.max_titles}"
    if common_terms:
        version += "+terms" + hashlib.sha256("\n".join(sorted(common_terms)).encode()).hexdigest()[:8]
    return writer.name, writer.model, version


def _openai(config: ProfileConfig, threads: int | None, common_terms: frozenset[str]) -> ProfileGenerator:
    from profile_features.profiles.llm.client import OpenAICompatibleBackend
    from profile_features.profiles.llm.generator import LLMProfileGenerator

    fallback = _rule_based(config, threads, common_terms)
    return LLMProfileGenerator(OpenAICompatibleBackend(config.openai), renderer_for(config), config.quality, fallback)


def _openai_key(config: ProfileConfig, common_terms: frozenset[str]) -> tuple[str, str, str]:
    return "openai", config.openai.model, renderer_for(config).version


def _transformers(config: ProfileConfig, threads: int | None, common_terms: frozenset[str]) -> ProfileGenerator:
    from profile_features.profiles.llm.generator import LLMProfileGenerator
    from profile_features.profiles.llm.local import TransformersBackend

    backend = TransformersBackend(config.transformers, threads=threads)  # cached per process
    fallback = _rule_based(config, threads, common_terms)
    return LLMProfileGenerator(backend, renderer_for(config, backend.count_tokens), config.quality, fallback)


def _transformers_key(config: ProfileConfig, common_terms: frozenset[str]) -> tuple[str, str, str]:
    from profile_features.profiles.llm.local import model_name

    return "transformers", model_name(config.transformers), renderer_for(config).version


BACKENDS: dict[str, Backend] = {
    "rule_based": Backend(_rule_based, _rule_based_key),
    "openai": Backend(_openai, _openai_key),
    "transformers": Backend(_transformers, _transformers_key),
}
