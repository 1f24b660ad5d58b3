"""Quality gates every LLM output passes before it becomes a profile.

`QualityGate.check` scrubs personal data (contacts, cards, IBANs, addresses: profiles.pii; they
are replaced, not rejected: a profile must never carry them, whatever the history held), then
returns the cleaned text and the reason it is rejected, if any. Reasons are stable
codes (REASONS) that the dead-letter table and the run summary count by: besides
length, repetition and garbage, an output is rejected by the output gate every writer passes
(sanitize.output_problem: a link `url`, an injected instruction or a model talking about itself
`injection`, tags or script `markup`, a credential `secret`), or for any six words copied from
the template's instructions (`prompt_leak`; its worked examples count as prompt echo only).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from profile_features.profiles.config import QualityConfig
from profile_features.profiles.sanitize import output_problem, scrub_contacts

__all__ = ["QualityGate", "GateResult", "scrub_contacts", "REASONS"]

REASONS = (
    "empty",
    "too_short",
    "too_long",
    "repetition",
    "prompt_echo",
    "prompt_leak",
    "injection",
    "url",
    "markup",
    "secret",
    "garbage",
)

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
_CUE = re.compile(r"^\s*(?:profile|description)\s*:\s*", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


@dataclass(frozen=True)
class GateResult:
    text: str  # cleaned (scrubbed, trimmed) output
    reason: str | None  # None: accepted
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


class QualityGate:
    def __init__(self, config: QualityConfig):
        self.config = config

    def clean(self, raw: str) -> str:
        """Trim, drop a repeated answer cue and anything after a new data block, scrub."""
        text = _CUE.sub("", raw.strip())
        # A base model that keeps going writes the next few-shot block: cut there.
        for marker in ("<history>", "<partial_profiles>", "\n\n", '\n- "'):
            text = text.split(marker, 1)[0]
        return " ".join(text.split())

    def check(self, raw: str, prompt: str = "", instructions: str = "") -> GateResult:
        """Clean `raw` and judge it against the gates; `prompt` is what the model read, `instructions`
        the task text in it (the template's rules, not its data or worked examples).

        The output gate (links, injected phrases, markup, credentials) and six words copied from the
        instructions reject the output; personal data is scrubbed from what is kept."""
        c = self.config
        unscrubbed = self.clean(raw)
        text = scrub_contacts(unscrubbed)
        if not text:
            return GateResult(text, "empty")
        problem = output_problem(unscrubbed)
        if problem is not None:
            return GateResult(text, *problem)
        if len(text) > c.max_chars:
            return GateResult(text, "too_long", f"{len(text)} > {c.max_chars} chars")
        words = _words(text)
        visible = [ch for ch in text if not ch.isspace()]
        letters = sum(ch.isalpha() for ch in visible)
        if visible and (letters / len(visible) < c.min_letter_share or "\ufffd" in text):
            return GateResult(text, "garbage", f"letters {letters}/{len(visible)}")
        if len(text) < c.min_chars or len(words) < c.min_words:
            return GateResult(text, "too_short", f"{len(text)} chars, {len(words)} words")
        if words and max(len(w) for w in words) > 40:
            return GateResult(text, "garbage", "a 40+ letter word")
        trigrams = _ngrams(words, 3)
        if len(trigrams) >= 4:
            repeated = sum(n - 1 for n in Counter(trigrams).values() if n > 1)
            if repeated / len(trigrams) > c.max_repeated_ngram_share:
                return GateResult(text, "repetition", f"{repeated}/{len(trigrams)} repeated trigrams")
        if prompt:
            grams = _ngrams(words, 6)
            if grams:
                seen = set(_ngrams(_words(prompt), 6))
                copied = sum(g in seen for g in grams)
                if copied / len(grams) > c.max_prompt_echo_share:
                    return GateResult(text, "prompt_echo", f"{copied}/{len(grams)} 6-grams copied from the prompt")
        if instructions:
            rules = set(_ngrams(_words(instructions), 6))
            leaked = [g for g in _ngrams(words, 6) if g in rules]
            if leaked:
                return GateResult(text, "prompt_leak", " ".join(leaked[0]))
        return GateResult(text, None)
