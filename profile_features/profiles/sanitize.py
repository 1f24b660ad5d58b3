"""One sanitising step for untrusted text, on both sides of every generator.

Item text comes from the user's catalogue and may hold anything: contact details, control
and invisible characters (bidi overrides, zero-width joiners), 10 KB titles, thousands of
genres. `SanitizedGenerator` wraps whatever generator the config picks: each event's text is
cleaned before the generator (and so any prompt) sees it, and each profile is cleaned after,
whoever wrote it (rule-based, LLM, fallback). Its version is part of the profiles' prompt
version, so a changed rule regenerates the profiles it would change.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import replace

from profile_features.profiles.base import GeneratedProfile, ProfileGenerator, UserHistory, UserOutcome
from profile_features.profiles.config import SanitizeConfig

__all__ = ["clean_text", "scrub_contacts", "sanitize_event", "sanitizer_version", "SanitizedGenerator"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"']+", re.IGNORECASE)
# 7 to 15 digits, allowing spaces, dots, dashes and brackets between them, optionally a leading +.
_PHONE = re.compile(r"(?<![\w])\+?(?:\d[\s().-]{0,2}){6,14}\d(?![\w])")
# Numbers that look like phones but are not: dates and year ranges ("1995-1997").
_NOT_PHONE = re.compile(
    r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|(?:1[5-9]|20)\d\d\s*[-–/]\s*(?:1[5-9]|20)\d\d"
)
# Invisible format characters, private use, surrogates and unassigned code points go; control
# characters (tabs, newlines, NUL) become spaces; everything else stays.
_KEEP = {"Cf": "", "Co": "", "Cs": "", "Cn": "", "Cc": " "}


def _phone(match: re.Match) -> str:
    return match.group(0) if _NOT_PHONE.fullmatch(match.group(0).strip()) else "[phone]"


def scrub_contacts(text: str) -> str:
    """E-mail addresses -> [email], URLs -> [url], phone numbers of 7+ digits -> [phone] (dates,
    years and year ranges stay)."""
    return _PHONE.sub(_phone, _URL.sub("[url]", _EMAIL.sub("[email]", text)))


def clean_text(value, max_chars: int, scrub: bool = True) -> str:
    """One line of plain text: NFKC, format/invisible characters dropped, control characters and
    line breaks as spaces, single spaces, contacts scrubbed, at most `max_chars` (cut at a word with
    an ellipsis)."""
    if value is None or max_chars <= 0:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    if not text.isprintable():  # the common case skips the per-character pass
        text = "".join(_KEEP.get(unicodedata.category(ch), ch) for ch in text)
    text = " ".join(text.split())
    if scrub:
        text = scrub_contacts(text)
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
    return f"clean1-{digest}"


class SanitizedGenerator:
    """A `ProfileGenerator` whose inputs and outputs pass the sanitising step."""

    def __init__(self, inner: ProfileGenerator, config: SanitizeConfig):
        self.inner, self.config = inner, config
        self.name, self.model = inner.name, inner.model
        self.suffix = sanitizer_version(config)
        self.prompt_version = f"{inner.prompt_version}+{self.suffix}"

    def _history(self, history: UserHistory) -> UserHistory:
        return replace(history, events=[sanitize_event(e, self.config) for e in history.events])

    def _profile(self, profile: GeneratedProfile) -> GeneratedProfile:
        text = clean_text(profile.text, self.config.max_profile_chars, self.config.scrub_contacts)
        return replace(profile, text=text, prompt_version=f"{profile.prompt_version}+{self.suffix}")

    def run(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]:
        for outcome in self.inner.run([self._history(h) for h in histories]):
            yield replace(outcome, profile=self._profile(outcome.profile))

    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]:
        return [self._profile(p) for p in self.inner.generate([self._history(h) for h in histories])]
