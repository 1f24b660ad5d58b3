"""Quality gates and contact scrubbing."""

from __future__ import annotations

import pytest

from profile_features.profiles.config import QualityConfig
from profile_features.profiles.llm.quality import QualityGate, scrub_contacts

GOOD = (
    "Preferences: mostly science fiction and action from the 1990s. Patterns: rates space stories highest. "
    "Recent shift: none."
)


@pytest.fixture()
def gate():
    return QualityGate(QualityConfig(min_chars=40, max_chars=400))


def test_accepts_a_good_profile(gate):
    result = gate.check("  Profile: " + GOOD + "\n\n<history>\n- next example")
    assert result.ok and result.text == GOOD


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ("Likes drama.", "too_short"),
        (GOOD * 5, "too_long"),
        ("great movies " * 12, "repetition"),
        ("#### $$$ %%% @@@ 1234 5678 !!! ??? ~~~ ^^^ &&& *** ((( )))", "garbage"),
        ("Preferences \ufffd\ufffd mostly drama, and some comedy from the nineties, rated high", "garbage"),
        ("Preferences: " + "x" * 60 + " and some drama from the nineties", "garbage"),
    ],
)
def test_rejects(gate, raw, reason):
    assert gate.check(raw).reason == reason


def test_rejects_an_echo_of_the_prompt(gate):
    prompt = (
        "Write a short structured profile of the user's taste in one line with three parts: "
        "Preferences, Patterns and Recent shift. Do not list item titles."
    )
    echo = "Write a short structured profile of the user's taste in one line with three parts: Preferences, Patterns"
    assert gate.check(echo, prompt).reason == "prompt_echo"
    assert gate.check(GOOD, prompt).ok


def test_scrubs_emails_and_phone_numbers(gate):
    raw = GOOD + " Contact jane.doe+films@example.co.uk or +1 (415) 555-0199 or 020 7946 0958."
    result = gate.check(raw)
    assert result.ok
    assert "example.co.uk" not in result.text and "555" not in result.text and "7946" not in result.text
    assert result.text.count("[email]") == 1 and result.text.count("[phone]") == 2
    # years, ratings and shares survive
    assert (
        scrub_contacts("Films from 1995 to 2004, rated 4.5, about 60%")
        == "Films from 1995 to 2004, rated 4.5, about 60%"
    )


def test_dates_are_not_phone_numbers():
    assert scrub_contacts("watched on 2026-03-22 and 12/03/2024") == "watched on 2026-03-22 and 12/03/2024"
