"""What an LLM profile run will cost, before it runs: calls, prompt tokens counted with the model's
own tokenizer where one can be had, expected output tokens, and money from `profile.pricing`.

Token counters, best first: the local model's tokenizer (`transformers` generator); the server's
`/tokenize` (llama.cpp and vLLM offer one); tiktoken for OpenAI models when it is installed and its
encoding is available offline; else the prompt config's chars-per-token estimate. The counter used is
named in the estimate, so a figure from the estimate is never mistaken for a tokenizer's.

Figures a server or an earlier run's summary reports are untrusted: a server's count must lie
within the text's UTF-8 bytes (plus a few special tokens), or that counter is not used; output
tokens per call from a summary are used only when they are a number within `max_tokens`.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from profile_features.profiles.config import ProfileConfig

__all__ = [
    "TokenCounter",
    "token_counter",
    "history_cost",
    "server_models",
    "price",
    "plausible_count",
    "observed_output_per_call",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenCounter:
    """`count(text) -> tokens`, and where the figure comes from."""

    count: Callable[[str], int]
    source: str


def _api_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _post_json(url: str, body: dict, key: str | None, timeout: float) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def plausible_count(count, text: str, source: str) -> int:
    """`count` tokens for `text` as a tokenizer reported it, when it can be one: a whole number from 0
    to the text's UTF-8 bytes plus 16 special tokens (no tokenizer makes more tokens than bytes).

    Raises:
        ValueError: naming `source`, when it cannot be a token count.
    """
    ok = not isinstance(count, bool) and isinstance(count, (int, float)) and count == count
    if not ok or count < 0 or count > len(text.encode()) + 16 or not float(count).is_integer():
        raise ValueError(f"{source} counted {count!r} tokens for {len(text)} characters: not a token count")
    return int(count)


def observed_output_per_call(summary: dict, max_tokens: int) -> float | None:
    """Output tokens per call in an earlier run's summary, when they are numbers and the mean lies
    within `max_tokens` (no call can generate more); None otherwise."""
    calls, tokens = summary.get("calls"), summary.get("tokens_out")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (calls, tokens))
    if not numbers or not calls or calls < 0 or tokens < 0:
        return None
    per_call = tokens / calls
    return per_call if 0 <= per_call <= max_tokens else None


def _server_counter(config: ProfileConfig) -> TokenCounter | None:
    """The server's tokenizer endpoint, the first that answers: llama.cpp's `/tokenize` (`content` ->
    `tokens`), vLLM's `/tokenize` (`prompt` -> `count`), llama-cpp-python's `/extras/tokenize/count`."""
    openai = config.openai
    key = os.environ.get(openai.api_key_env) if openai.api_key_env else None
    root, timeout = _api_root(openai.base_url), min(openai.timeout_s, 10.0)
    styles = (
        ("/tokenize", {"add_special": True}, "content", lambda r: len(r["tokens"])),
        ("/tokenize", {"model": openai.model}, "prompt", lambda r: int(r["count"])),
        ("/extras/tokenize/count", {"model": openai.model}, "input", lambda r: int(r["count"])),
    )
    for path, body, field, read in styles:
        url = root + path
        try:  # a server that miscounts the probe is not used
            plausible_count(read(_post_json(url, {**body, field: "probe"}, key, timeout)), "probe", url)
        except (OSError, ValueError, KeyError, TypeError):
            continue

        def count(text: str, url=url, body=body, field=field, read=read) -> int:
            return plausible_count(read(_post_json(url, {**body, field: text}, key, timeout)), text, url)

        return TokenCounter(count, f"server {url}")
    return None


def _tiktoken_counter(model: str) -> TokenCounter | None:
    try:
        import tiktoken

        encoding = tiktoken.encoding_for_model(model)
    except Exception as err:  # not installed, unknown model, or its encoding file cannot be fetched offline
        logger.info("tiktoken cannot count for %r (%s)", model, err)
        return None
    return TokenCounter(lambda text: len(encoding.encode(text, disallowed_special=())), f"tiktoken {encoding.name}")


def _local_counter(config: ProfileConfig) -> TokenCounter:
    from transformers import AutoTokenizer

    from profile_features.profiles.llm.local import model_name, resolve_model

    path, gguf_file = resolve_model(config.transformers)
    tokenizer = (
        AutoTokenizer.from_pretrained(path, gguf_file=gguf_file) if gguf_file else AutoTokenizer.from_pretrained(path)
    )
    return TokenCounter(
        lambda text: len(tokenizer(text)["input_ids"]), f"tokenizer of {model_name(config.transformers)}"
    )


def heuristic_counter(config: ProfileConfig) -> TokenCounter:
    """The estimate the renderer itself plans with when a backend has no tokenizer."""
    from profile_features.profiles.llm.prompts import heuristic_token_counter

    per_token = config.prompt.chars_per_token
    return TokenCounter(heuristic_token_counter(per_token), f"estimate ({per_token} chars/token)")


def token_counter(config: ProfileConfig) -> TokenCounter:
    """The best counter for the configured generator (see the module docstring)."""
    if config.generator == "transformers":
        return _local_counter(config)
    if config.generator == "openai":
        return _server_counter(config) or _tiktoken_counter(config.openai.model) or heuristic_counter(config)
    return heuristic_counter(config)


def history_cost(renderer, events: Sequence[dict], counter: TokenCounter, summary_tokens: int) -> tuple[int, int]:
    """(calls, prompt tokens) of one history's first attempts, planned exactly as the run plans them.

    A history longer than the budget is described chunk by chunk and then merged; the merge prompt's
    partial profiles are stood in for by `summary_tokens` words each.
    """
    chunks = renderer.plan(events)
    tokens = sum(counter.count(renderer.history_request(lines).text) for lines in chunks)
    if len(chunks) == 1:
        return 1, tokens
    stand_ins = [" ".join(["word"] * summary_tokens)] * len(chunks)
    return len(chunks) + 1, tokens + counter.count(renderer.aggregate_request(stand_ins).text)


def server_models(config: ProfileConfig) -> list[str] | None:
    """The model ids the OpenAI-compatible server lists (None when it does not answer)."""
    openai = config.openai
    key = os.environ.get(openai.api_key_env) if openai.api_key_env else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(f"{openai.base_url.rstrip('/')}/models", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=min(openai.timeout_s, 10.0)) as response:
            from profile_features.profiles.llm.client import redact

            return sorted(redact(str(m["id"]), key) for m in json.loads(response.read())["data"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.info("%s/models did not answer (%s)", openai.base_url, err)
        return None


def price(config: ProfileConfig, tokens_in: float, tokens_out: float) -> dict | None:
    """Cost from `profile.pricing` (per 1M tokens in / out), None when no pricing is set."""
    pricing = config.pricing
    if pricing is None:
        return None
    for name, value in (("tokens_in", tokens_in), ("tokens_out", tokens_out)):
        if not (isinstance(value, (int, float)) and 0 <= value < 1e15):  # NaN fails too
            raise ValueError(f"price: {name}={value!r} is not a token count")
    cost_in = tokens_in / 1e6 * pricing.input_per_million
    cost_out = tokens_out / 1e6 * pricing.output_per_million
    return {
        "input": round(cost_in, 4),
        "output": round(cost_out, 4),
        "total": round(cost_in + cost_out, 4),
        "currency": pricing.currency,
    }
