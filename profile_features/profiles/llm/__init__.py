"""LLM profile generation: prompts, backends (OpenAI-compatible HTTP, local transformers),
quality gates and the generator that ties them together behind `ProfileGenerator`.

Importing this package needs only the base dependencies; the transformers backend
imports torch/transformers when it is built.
"""

from profile_features.profiles.llm.client import (
    BackendError,
    Completion,
    CompletionRequest,
    FatalBackendError,
    MalformedResponseError,
    OpenAICompatibleBackend,
)
from profile_features.profiles.llm.generator import LLMProfileGenerator, UserOutcome
from profile_features.profiles.llm.prompts import TEMPLATES, PromptRenderer, PromptTemplate, escape_text
from profile_features.profiles.llm.quality import QualityGate, scrub_contacts

__all__ = [
    "BackendError",
    "Completion",
    "CompletionRequest",
    "FatalBackendError",
    "MalformedResponseError",
    "OpenAICompatibleBackend",
    "LLMProfileGenerator",
    "UserOutcome",
    "TEMPLATES",
    "PromptRenderer",
    "PromptTemplate",
    "escape_text",
    "QualityGate",
    "scrub_contacts",
]
