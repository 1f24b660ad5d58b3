"""One sanitising step for untrusted text, on both sides of every generator, and one output gate.

Item text comes from the user's catalogue and may hold anything: contact details, payment cards,
IBANs, street addresses, credentials (profiles.pii lists each rule and its limits), markup,
control and invisible characters (bidi overrides, zero-width joiners), 10 KB titles, thousands of
genres. `SanitizedGenerator` wraps whatever generator the config picks: each event's text is
cleaned before the generator (and so any prompt) sees it, and each profile is cleaned after and
judged by `output_problem`, whoever wrote it (rule-based, LLM, fallback): a profile that still
fails is stored as no profile, with a dead letter. Rejections (dead letters) are scrubbed too. The
LLM quality gate calls the same `output_problem` on the raw output, so no writer keeps what the
LLM gate rejects. Its version is part of the profiles' prompt version, so a changed rule
regenerates the profiles it would change.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import replace

from profile_features.profiles.base import GeneratedProfile, ProfileGenerator, Rejection, UserHistory, UserOutcome
from profile_features.profiles.config import SanitizeConfig
from profile_features.profiles.pii import CREDENTIAL, SECRET, scrub_private

__all__ = [
    "clean_text",
    "scrub_contacts",
    "scrub_private",
    "strip_markup",
    "output_problem",
    "sanitize_event",
    "sanitizer_version",
    "SanitizedGenerator",
]

# Bumped when a rule changes, so cached profiles written under the old rules are regenerated.
_RULES_VERSION = "clean2"
# Invisible format characters, private use, surrogates and unassigned code points go; control
# characters (tabs, newlines, NUL) become spaces; everything else stays.
_KEEP = {"Cf": "", "Co": "", "Cs": "", "Cn": "", "Cc": " "}
# Script and style elements go with their content; any other tag goes, its text stays.
_ACTIVE_BLOCK = re.compile(r"<\s*(script|style|iframe|object)\b[^>]*>.*?(?:<\s*/\s*\1\s*>|$)", re.I | re.S)
_TAG = re.compile(r"<\s*/?\s*[A-Za-z][\w:-]*(?:\s[^<>]*)?/?\s*>|<!--.*?-->")
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z][\w:-]*(?:\s[^<>]*)?/?\s*>|<!--|\bjavascript\s*:|\bon[a-z]+\s*=\s*[\"']", re.I)
_LINK = re.compile(r"\b(?:https?://|ftp://|www\.)\S+|(?<![\w-])[\w-]+\.(?:com|net|org|io|ly|co|ru|info|xyz)/\S*", re.I)
# What an injected instruction or a model talking about itself leaves in an answer.
_INJECTED = re.compile(
    r"\bpwned\b|\bjailbr(?:oken|eak)|ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) instructions"
    r"|\b(?:system|hidden) prompt\b|\bmy instructions\b|\bas an ai\b|\blanguage model\b",
    re.IGNORECASE,
)

# The placeholders keep their old name for callers that import it: contacts are one class among several now.
scrub_contacts = scrub_private


def strip_markup(text: str) -> str:
    """Text without HTML/XML tags, comments, or script/style elements (their content too)."""
    if "<" not in text:
        return text
    return _TAG.sub(" ", _ACTIVE_BLOCK.sub(" ", text))


def output_problem(text: str) -> tuple[str, str] | None:
    """The one output gate every writer's text passes: (reason, what matched), or None when the text
    may be stored. Reasons: `url` (a link), `injection` (an injected instruction or a model talking
    about itself), `markup` (tags, `javascript:`, event handlers), `secret` (a credential or what the
    client redacted as one)."""
    for reason, pattern in (("url", _LINK), ("injection", _INJECTED), ("markup", _MARKUP)):
        found = pattern.search(text)
        if found:
            return reason, found.group(0)[:80]
    found = CREDENTIAL.search(text)
    if found or SECRET in text:
        return "secret", "a credential"  # never the matched text: it is the secret
    return None


def clean_text(value, max_chars: int, scrub: bool = True) -> str:
    """One line of plain text: NFKC, format/invisible characters dropped, control characters and
    line breaks as spaces, markup removed, single spaces, personal data and credentials scrubbed
    (profiles.pii), at most `max_chars` (cut at a word with an ellipsis)."""
    if value is None or max_chars <= 0:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    if not text.isprintable():  # the common case skips the per-character pass
        text = "".join(_KEEP.get(unicodedata.category(ch), ch) for ch in text)
    text = " ".join(strip_markup(text).split())
    if scrub:
        text = scrub_private(text)
    if len(text) > max_chars:
        cut = text[: max(1, max_chars - 1)]
        if " " in cut[len(cut) // 2 :]:
            cut = cut.rsplit(" ", 1)[0]
        text = cut.rstrip() + "…"
    return text


def sanitize_event(event: dict, config: SanitizeConfig) -> dict:
    """The event with its free text cleaned and its genres capped in number and length."""
    scrub = config.scrub_contacts
    genres = [clean_text(g, config.max_genre_chars, scrub) for g in (event.get("genres") or [])[: config.max_genres]]
    cleaned = {
        **event,
        "title": clean_text(event.get("title"), config.max_title_chars, scrub),
        "description": clean_text(event.get("description"), config.max_description_chars, scrub),
        "genres": [g for g in genres if g],
    }
    if event.get("event_type") is not None:
        cleaned["event_type"] = clean_text(event["event_type"], config.max_event_type_chars, scrub)
    return cleaned


def sanitizer_version(config: SanitizeConfig) -> str:
    digest = hashlib.sha256(json.dumps(config.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
    return f"{_RULES_VERSION}-{digest}"


class SanitizedGenerator:
    """A `ProfileGenerator` whose inputs and outputs pass the sanitising step."""

    def __init__(self, inner: ProfileGenerator, config: SanitizeConfig):
        self.inner, self.config = inner, config
        self.name, self.model = inner.name, inner.model
        self.suffix = sanitizer_version(config)
        self.prompt_version = f"{inner.prompt_version}+{self.suffix}"

    def _history(self, history: UserHistory) -> UserHistory:
        return replace(history, events=[sanitize_event(e, self.config) for e in history.events])

    def _profile(self, profile: GeneratedProfile) -> tuple[GeneratedProfile, Rejection | None]:
        """The cleaned profile, and the rejection when the output gate refuses it (then no profile)."""
        text = clean_text(profile.text, self.config.max_profile_chars, self.config.scrub_contacts)
        problem = output_problem(text) if text else None
        rejection = None
        if problem is not None:
            rejection = Rejection(f"output:{problem[0]}", problem[1], scrub_private(text)[:2000])
            text = ""  # no profile: the embedding job writes no vector, the dead letter says why
        return replace(profile, text=text, prompt_version=f"{profile.prompt_version}+{self.suffix}"), rejection

    def _rejection(self, rejection: Rejection) -> Rejection:
        # Dead letters hold rejected outputs and server error bodies: both may quote a prompt.
        return replace(rejection, detail=scrub_private(rejection.detail), text=scrub_private(rejection.text))

    def run(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]:
        for outcome in self.inner.run([self._history(h) for h in histories]):
            profile, rejection = self._profile(outcome.profile)
            rejections = [self._rejection(r) for r in outcome.rejections] + ([rejection] if rejection else [])
            yield replace(outcome, profile=profile, rejections=rejections)

    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]:
        return [self._profile(p)[0] for p in self.inner.generate([self._history(h) for h in histories])]
