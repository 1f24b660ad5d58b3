"""Profile generator settings (the `profile:` section of the job YAML).

`generator` picks the backend: `rule_based` (default, and the fallback of the others),
`openai` (any OpenAI-compatible endpoint) or `transformers` (a local causal LM).
The API key is never part of the config: `openai.api_key_env` names the environment
variable that holds it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from profile_features.strict_model import StrictModel

__all__ = [
    "ProfileConfig",
    "PromptConfig",
    "GenerationConfig",
    "OpenAIConfig",
    "TransformersConfig",
    "QualityConfig",
    "SanitizeConfig",
    "CacheConfig",
    "PricingConfig",
]


class PromptConfig(StrictModel):
    """Which versioned template renders a history, and within what budget."""

    # A registered template id (profile_features.profiles.llm.prompts.TEMPLATES): the short
    # structured profile or the long free-text description.
    template: Literal["short-v1", "long-v1"] = "short-v1"
    # `completion`: a few-shot text prompt for base models (/v1/completions);
    # `chat`: system + user messages for instruction-tuned models.
    mode: Literal["completion", "chat"] = "completion"
    few_shot: int = Field(2, ge=0, le=2)  # completion mode: worked examples in the prompt (cost ~250 tokens each)
    max_prompt_tokens: int = Field(1500, gt=100)
    max_item_chars: int = Field(160, ge=20)  # title + description per event, after escaping
    chars_per_token: float = Field(3.5, gt=0)  # budget estimate when the backend has no tokenizer
    # `chunk`: split a history that does not fit into chunks, describe each, then merge;
    # `truncate`: keep the most recent events that fit.
    long_history: Literal["chunk", "truncate"] = "chunk"
    max_chunks: int = Field(4, ge=1)  # beyond this the oldest events are dropped


class GenerationConfig(StrictModel):
    max_tokens: int = Field(160, gt=0)
    temperature: float = Field(0.0, ge=0)
    stop: list[str] = Field(default_factory=lambda: ["\n\n"])


class OpenAIConfig(StrictModel):
    """An OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp server, TGI."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str | None = "OPENAI_API_KEY"  # the variable's name; unset variable = no key
    timeout_s: float = Field(60.0, gt=0)  # the whole request, first byte sent to last byte read
    max_response_bytes: int = Field(1_000_000, gt=0)  # a profile is a few hundred bytes; more is not an answer
    max_concurrency: int = Field(8, gt=0)  # requests in flight per Spark Python worker
    max_retries: int = Field(5, ge=0)  # on 429, 5xx, timeouts and connection errors
    malformed_retries: int = Field(2, ge=0)  # on unparseable 200 responses
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)


class TransformersConfig(StrictModel):
    """A local causal LM. `model_path` None means the packaged Gemma 3 270M GGUF."""

    model_path: str | None = None  # a HF model directory, or the directory of `gguf_file`
    gguf_file: str | None = None
    model_name: str | None = None  # the provenance name; default derived from the path
    batch_size: int = Field(4, gt=0)
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    threads: int | None = None  # torch threads per worker; None = cores / task slots
    # GGUF de-quantisation is slow; the converted weights are cached here (keyed by
    # the GGUF file's size and name) so an executor converts once per machine.
    convert_cache_dir: str | None = None


class QualityConfig(StrictModel):
    """Gates every LLM output passes before it becomes a profile."""

    min_chars: int = Field(40, ge=1)
    max_chars: int = Field(2000, gt=1)
    min_words: int = Field(6, ge=1)
    max_repeated_ngram_share: float = Field(0.35, gt=0, le=1)  # share of repeated word trigrams
    max_prompt_echo_share: float = Field(0.6, gt=0, le=1)  # share of 6-grams copied from the prompt
    min_letter_share: float = Field(0.6, gt=0, le=1)  # letters among non-space characters
    attempts: int = Field(2, ge=1)  # generations per prompt before falling back
    # A rejected output is regenerated at this temperature at least: at 0 the model
    # would write the same rejected text again.
    retry_temperature: float = Field(0.7, ge=0)


class SanitizeConfig(StrictModel):
    """The one cleaning step every event's text passes before any generator reads it, and every
    profile passes whatever wrote it (rule-based, LLM or fallback): contact details scrubbed,
    control and invisible characters removed, lengths capped."""

    scrub_contacts: bool = True  # e-mail addresses, phone numbers and URLs -> [email], [phone], [url]
    max_title_chars: int = Field(200, gt=0)
    max_description_chars: int = Field(1000, ge=0)
    max_genres: int = Field(10, ge=0)  # per event: one event cannot blow the prompt's token budget
    max_genre_chars: int = Field(40, gt=0)
    max_event_type_chars: int = Field(40, gt=0)
    max_profile_chars: int = Field(2000, gt=0)


class CacheConfig(StrictModel):
    """Incremental refresh: profiles keyed by (history hash, generator, model, prompt version)."""

    # None: on for LLM generators, off for rule_based (which is cheaper than a cache read).
    enabled: bool | None = None
    path: str | None = None  # default: <data_dir>/profile_cache
    retry_fallbacks: bool = True  # a re-run retries users that fell back to rule_based
    checkpoint_every: int = Field(32, gt=0)  # users per checkpoint file written by a worker


class PricingConfig(StrictModel):
    """The provider's price, for the cost estimate of `generate_profiles --dry-run`."""

    input_per_million: float = Field(ge=0)  # per 1M prompt tokens
    output_per_million: float = Field(ge=0)  # per 1M generated tokens
    currency: str = "USD"


class ProfileConfig(StrictModel):
    """Which profile generator writes the user profiles, and how."""

    generator: Literal["rule_based", "openai", "transformers"] = "rule_based"
    max_titles: int = Field(3, gt=0)
    # Without genres the rule-based writer describes users by terms that recur in their items'
    # text; a term in more than this share of catalogue items is too common to describe anyone.
    common_term_share: float = Field(0.02, gt=0, le=1)
    prompt: PromptConfig = PromptConfig()
    generation: GenerationConfig = GenerationConfig()
    openai: OpenAIConfig = OpenAIConfig()
    transformers: TransformersConfig = TransformersConfig()
    quality: QualityConfig = QualityConfig()
    sanitize: SanitizeConfig = SanitizeConfig()
    cache: CacheConfig = CacheConfig()
    pricing: PricingConfig | None = None  # e.g. {input_per_million: 0.15, output_per_million: 0.60}
    # Spark partitions the users to generate are spread over; None = default parallelism.
    partitions: int | None = Field(None, gt=0)
    # Fail the run (after writing its summary) when more users than this fell back.
    max_fallback_fraction: float | None = Field(None, ge=0, le=1)
    dead_letter_path: str | None = None  # default: <data_dir>/profile_dead_letters
    # A refresh list (Parquet, or CSV by its .csv name, with a user_id column; e.g. written
    # by `profile-features refresh-plan`): generate only these users; every other user keeps
    # a profile without generation (see profile_features.spark.profile_job). Unknown,
    # duplicate or empty ids go to <data_dir>/profile_refresh_rejects with the reason.
    only_users: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ProfileConfig:
        if self.quality.min_chars >= self.quality.max_chars:
            raise ValueError("profile.quality.min_chars must be below max_chars")
        return self

    @property
    def is_llm(self) -> bool:
        return self.generator != "rule_based"

    @property
    def cache_enabled(self) -> bool:
        return self.is_llm if self.cache.enabled is None else self.cache.enabled
