"""The OpenAI-compatible client against the fault-injecting test server."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from profile_features.profiles.config import OpenAIConfig
from profile_features.profiles.llm.client import (
    BackendError,
    CompletionRequest,
    FatalBackendError,
    MalformedResponseError,
    OpenAICompatibleBackend,
)
from tests.support.fake_openai import FakeOpenAIServer

PROMPT = CompletionRequest(
    prompt='<history>\n- "Nebula" | Sci-Fi | rated 5\n</history>\nProfile:', max_tokens=32, stop=("\n\n",)
)
CHAT = CompletionRequest(
    messages=(
        {"role": "system", "content": "Write a profile."},
        {"role": "user", "content": '<history>\n- "Kiss" | Romance | rated 4\n</history>'},
    )
)


def backend(server, sleeps=None, **overrides) -> OpenAICompatibleBackend:
    settings = {
        "base_url": server.base_url,
        "model": "fake-llm",
        "timeout_s": 0.5,
        "max_retries": 3,
        "malformed_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        **overrides,
    }
    return OpenAICompatibleBackend(
        OpenAIConfig(**settings), sleep=(sleeps.append if sleeps is not None else time.sleep), rng=random.Random(0)
    )


def test_completions_and_chat(fake_server):
    client = backend(fake_server)
    completion = client.complete(PROMPT)
    assert "Sci-Fi" in completion.text and completion.attempts == 1 and completion.usage_reported
    assert completion.tokens_in > 0 and completion.tokens_out > 0
    body = fake_server.requests[-1]
    assert (
        body["prompt"] == PROMPT.prompt
        and body["stop"] == ["\n\n"]
        and body["max_tokens"] == 32
        and body["model"] == "fake-llm"
    )
    chat = client.complete(CHAT)
    assert "Romance" in chat.text and fake_server.requests[-1]["messages"][0]["role"] == "system"


def test_retries_429_500_and_timeouts_then_succeeds(fake_server):
    fake_server.timeout_s = 1.5
    fake_server.script("429", "500", "timeout")
    sleeps: list[float] = []
    completion = backend(fake_server, sleeps).complete(PROMPT)
    assert completion.attempts == 4 and "Sci-Fi" in completion.text
    assert fake_server.answers == {"429": 1, "500": 1, "timeout": 1, "ok": 1}
    assert len(sleeps) == 3 and all(0 < s <= 0.05 for s in sleeps)


def test_gives_up_after_max_retries(fake_server):
    fake_server.script(*["503"] * 10)
    with pytest.raises(BackendError) as err:
        backend(fake_server, [], max_retries=2).complete(PROMPT)
    assert err.value.reason == "http_503" and err.value.attempts == 3 and fake_server.calls == 3


def test_malformed_responses_are_retried_then_reported(fake_server):
    fake_server.script("malformed", "no_choices")
    with pytest.raises(MalformedResponseError) as err:
        backend(fake_server, []).complete(PROMPT)
    assert err.value.reason == "malformed" and err.value.attempts == 2
    fake_server.script("malformed")
    assert backend(fake_server, []).complete(PROMPT).attempts == 2


def test_client_errors_fail_the_request_or_the_job(fake_server):
    fake_server.answer = lambda path, body: (400, {}, b'{"error": "context too long"}')
    with pytest.raises(BackendError) as err:
        backend(fake_server, []).complete(PROMPT)
    assert err.value.reason == "http_400" and err.value.attempts == 1
    fake_server.answer = lambda path, body: (401, {}, b'{"error": "bad key"}')
    with pytest.raises(FatalBackendError):
        backend(fake_server, []).complete(PROMPT)


def test_api_key_comes_from_the_named_env_var_and_is_never_shown(fake_server, monkeypatch):
    import http.client

    secret = "sk-test-0123456789"
    monkeypatch.setenv("PF_TEST_KEY", secret)
    client = backend(fake_server, [], api_key_env="PF_TEST_KEY")
    sent_headers = []
    real_request = http.client.HTTPConnection.request

    def spy(self, method, url, body=None, headers=None, **kw):
        sent_headers.append(dict(headers or {}))
        return real_request(self, method, url, body=body, headers=headers, **kw)

    monkeypatch.setattr(http.client.HTTPConnection, "request", spy)
    client.complete(PROMPT)
    assert sent_headers[-1]["Authorization"] == f"Bearer {secret}"
    assert secret not in repr(client) and secret not in str(client.config.model_dump())
    fake_server.answer = lambda path, body: (401, {}, b'{"error": "bad key"}')
    with pytest.raises(FatalBackendError) as err:
        client.complete(PROMPT)
    assert secret not in str(err.value) and "401" in str(err.value)
    # no variable, no header
    monkeypatch.delenv("PF_TEST_KEY")
    del fake_server.answer
    backend(fake_server, [], api_key_env="PF_TEST_KEY").complete(PROMPT)
    assert "Authorization" not in sent_headers[-1]


def test_backoff_is_exponential_with_jitter_and_honours_retry_after(fake_server):
    client = backend(fake_server, backoff_base_s=1.0, backoff_max_s=10.0)
    for n, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 10.0)]:
        delays = [client.backoff(n) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays) and len(set(delays)) > 1
    assert client.backoff(1, retry_after=5.0) == 5.0
    assert client.backoff(1, retry_after=500.0) == 10.0


def test_bounded_concurrency_per_client():
    with FakeOpenAIServer(latency_s=0.1) as server:
        client = backend(server, max_concurrency=3)
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda _: client.complete(PROMPT), range(12)))
        assert server.max_in_flight == 3 and server.calls == 12


def test_missing_usage_is_estimated():
    with FakeOpenAIServer(usage=False) as server:
        completion = backend(server).complete(PROMPT)
    assert not completion.usage_reported and completion.tokens_in > 0 and completion.tokens_out > 0


def test_connection_refused_is_retried_then_reported():
    with FakeOpenAIServer() as server:
        url = server.base_url
    client = OpenAICompatibleBackend(
        OpenAIConfig(base_url=url, max_retries=2, backoff_base_s=0.0), sleep=lambda s: None
    )
    with pytest.raises(BackendError) as err:
        client.complete(PROMPT)
    assert err.value.reason == "connection" and err.value.attempts == 3


def test_threads_share_nothing_but_the_limit(fake_server):
    client = backend(fake_server, max_concurrency=4)
    results = []
    threads = [threading.Thread(target=lambda: results.append(client.complete(CHAT).text)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_a_trickling_server_cannot_hold_a_request_past_its_deadline(fake_server):
    fake_server.timeout_s = 4.0  # the answer takes 4 s to dribble out, no byte later than ~20 ms
    client = backend(fake_server, timeout_s=0.5, max_retries=0)
    fake_server.script("trickle")
    started = time.monotonic()
    with pytest.raises(BackendError, match="timeout"):
        client.complete(PROMPT)
    assert time.monotonic() - started < 1.5
    assert "Sci-Fi" in client.complete(PROMPT).text  # the next request gets a fresh connection


def test_a_huge_body_is_not_read_whole(fake_server):
    client = backend(fake_server, max_response_bytes=10_000)
    fake_server.script("huge", "huge")
    with pytest.raises(MalformedResponseError, match="too_large.*10000 bytes"):
        client.complete(PROMPT)
    assert "Sci-Fi" in client.complete(PROMPT).text


def test_an_error_body_that_echoes_the_authorization_header_never_shows_the_key(fake_server, monkeypatch):
    secret = "sk-live-abcdefghijklmnop"
    monkeypatch.setenv("PF_TEST_KEY", secret)
    client = backend(fake_server, api_key_env="PF_TEST_KEY", max_retries=0)
    fake_server.script("echo_auth")
    with pytest.raises(BackendError) as err:
        client.complete(PROMPT)
    assert "Authorization" in err.value.detail and "***" in err.value.detail  # the echo is there, redacted
    assert secret not in str(err.value) and secret not in err.value.detail
    from profile_features.profiles.llm.client import redact

    assert redact("key=sk-abcdefgh12345 and Bearer xyz.123") == "key=*** and Bearer ***"
