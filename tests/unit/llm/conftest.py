"""Fixtures for the LLM unit tests: the fault-injecting test server (tests/support/fake_openai.py) and
the histories of the session's LLM sample (`llm_sample`, tests/conftest.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from profile_features.histories import build_histories, history_events
from profile_features.profiles.base import UserHistory
from tests.support.fake_openai import FakeOpenAIServer


@pytest.fixture()
def fake_server():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def histories_frame(llm_sample) -> pd.DataFrame:
    frame = llm_sample.interactions.merge(llm_sample.items, on="item_id")
    return build_histories(frame, llm_sample.interactions.timestamp.max().to_pydatetime(), 30)


@pytest.fixture(scope="session")
def user_histories(histories_frame) -> list[UserHistory]:
    return [
        UserHistory(r.user_id, history_events(r.history_json), r.history_hash) for r in histories_frame.itertuples()
    ]
