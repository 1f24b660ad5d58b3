"""An OpenAI-compatible HTTP backend (chat and plain completions) with bounded
concurrency, retries with exponential backoff and jitter, and typed failures.

Standard library only (http.client, one keep-alive connection per thread), so the
`llm` extra adds nothing for this backend. The API key is read from the environment
variable the config names; it is sent as a bearer token and never logged, printed or
put in an exception message: every error detail is redacted (the key, bearer tokens,
`sk-...` keys), since a server or proxy may echo the request's headers back.

`timeout_s` bounds the whole request: a watchdog closes the socket at the deadline, so
a server that trickles a byte at a time cannot hold a worker. Bodies over
`max_response_bytes` are not read further.

Failure classes:
  - 429, 408, 5xx, timeouts, connection errors: retried up to `max_retries` times,
    honouring Retry-After; then `BackendError` (the user falls back to rule_based).
  - a 200 whose body is not a completion: retried `malformed_retries` times, then
    `MalformedResponseError`.
  - other 4xx (400, 413, 422: this request is bad): `BackendError` at once.
  - 401, 403, 404 (key, permissions, URL or model name wrong): `FatalBackendError`;
    falling back for every user would hide a misconfigured job, so the job stops.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from profile_features.profiles.config import OpenAIConfig

__all__ = [
    "CompletionRequest",
    "Completion",
    "BackendError",
    "MalformedResponseError",
    "FatalBackendError",
    "OpenAICompatibleBackend",
    "estimate_tokens",
    "redact",
]

_RETRYABLE = {408, 409, 425, 429}
_FATAL = {401, 403, 404}
_SECRETS = re.compile(r"(?i)(bearer\s+)[^\s\"',;}]+|\bsk-[A-Za-z0-9_\-]{8,}")


def redact(text: str, *secrets: str | None) -> str:
    """`text` without the given secrets, bearer tokens or `sk-` keys."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRETS.sub(lambda m: (m.group(1) or "") + "***", text)


def estimate_tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


@dataclass(frozen=True)
class CompletionRequest:
    """One generation: a completion prompt (`prompt`) or chat `messages`."""

    prompt: str | None = None
    messages: tuple[dict, ...] | None = None
    max_tokens: int = 160
    temperature: float = 0.0
    stop: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The whole prompt as text (for echo checks and token estimates)."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(m["content"] for m in self.messages or ())


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    attempts: int = 1  # requests sent for this completion (1 + retries)
    usage_reported: bool = True  # False: tokens are estimates (the server sent no usage)
    model: str | None = None  # the model the server says answered (e.g. a dated snapshot of an alias)


class BackendError(Exception):
    """This request failed for good; the user falls back. `reason` is a short code."""

    def __init__(self, reason: str, detail: str = "", attempts: int = 1):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.attempts = reason, detail, attempts


class MalformedResponseError(BackendError):
    pass


class FatalBackendError(RuntimeError):
    """The backend is misconfigured (auth, URL, model): the job must stop."""


class _Retry(Exception):
    def __init__(self, reason: str, detail: str, retry_after: float | None = None, malformed: bool = False):
        super().__init__(reason)
        self.reason, self.detail, self.retry_after, self.malformed = reason, detail, retry_after, malformed


class OpenAICompatibleBackend:
    """Blocking `complete()` safe to call from many threads; at most `max_concurrency`
    requests are in flight per instance (and a generator uses one per worker process).

    Args:
        config: endpoint, model, timeouts, retry policy.
        sleep, rng: injectable for tests.
    """

    name = "openai"
    batch_size = None  # not a batching backend: callers run requests concurrently

    def __init__(
        self, config: OpenAIConfig, sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None
    ):
        self.config = config
        self.model = config.model
        self.max_concurrency = config.max_concurrency
        parts = urlsplit(config.base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"profile.openai.base_url: not an http(s) URL: {config.base_url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path
        self._api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._local = threading.local()
        self._sleep, self._rng = sleep, rng or random.Random()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatibleBackend(base_url={self.config.base_url!r}, model={self.model!r})"

    count_tokens = None  # no tokenizer: the renderer estimates

    # -- public -------------------------------------------------------------
    def complete(self, request: CompletionRequest) -> Completion:
        """Send one request, retrying transient failures.

        Raises:
            BackendError / MalformedResponseError: the request failed for good.
            FatalBackendError: auth, URL or model is wrong.
        """
        attempts = transient = malformed = 0
        while True:
            attempts += 1
            try:
                with self._slots:
                    completion = self._send(request)
                return dataclasses.replace(completion, attempts=attempts)
            except _Retry as retry:
                if retry.malformed:
                    malformed += 1
                    if malformed > self.config.malformed_retries:
                        raise MalformedResponseError(retry.reason, retry.detail, attempts) from None
                    continue  # a bad body is not load: retry at once
                transient += 1
                if transient > self.config.max_retries:
                    raise BackendError(retry.reason, retry.detail, attempts) from None
                self._sleep(self.backoff(transient, retry.retry_after))

    def backoff(self, retry_number: int, retry_after: float | None = None) -> float:
        """Exponential backoff with equal jitter, at least the server's Retry-After."""
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (retry_number - 1))
        delay = cap / 2 + self._rng.uniform(0, cap / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.backoff_max_s))
        return delay

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- one HTTP exchange --------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.config.timeout_s)
            self._local.conn = conn
        return conn

    def _payload(self, request: CompletionRequest) -> tuple[str, dict]:
        body = {"model": self.model, "max_tokens": request.max_tokens, "temperature": request.temperature}
        if request.stop:
            body["stop"] = list(request.stop)
        if request.messages is not None:
            return f"{self._prefix}/chat/completions", {**body, "messages": list(request.messages)}
        return f"{self._prefix}/completions", {**body, "prompt": request.prompt}

    def _send(self, request: CompletionRequest) -> Completion:
        path, body = self._payload(request)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        conn = self._connection()
        expired = threading.Event()
        watchdog = threading.Timer(self.config.timeout_s, self._abort, (conn, expired))
        watchdog.daemon = True
        try:
            watchdog.start()
            conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            response = conn.getresponse()
            status, retry_after = response.status, response.getheader("Retry-After")
            raw = response.read(self.config.max_response_bytes + 1)
        except (TimeoutError, socket.timeout) as err:
            self.close()
            raise _Retry("timeout", f"no answer within {self.config.timeout_s}s") from err
        except (ConnectionError, http.client.HTTPException, OSError, ValueError, AttributeError) as err:
            self.close()
            if expired.is_set():
                raise _Retry("timeout", f"no complete answer within {self.config.timeout_s}s") from err
            raise _Retry("connection", type(err).__name__) from err
        finally:
            watchdog.cancel()
        if expired.is_set():  # the deadline hit as the last byte arrived: the connection is gone
            self.close()
            raise _Retry("timeout", f"no complete answer within {self.config.timeout_s}s")
        if len(raw) > self.config.max_response_bytes:
            self.close()  # the rest of the body is still on the wire
            raise _Retry("too_large", f"response over {self.config.max_response_bytes} bytes", malformed=True)
        if status == 200:
            return self._parse(raw, chat=request.messages is not None, prompt=request.text)
        detail = redact(raw[:4000].decode("utf-8", "replace"), self._api_key)[:200]  # redact, then cut
        if status in _RETRYABLE or status >= 500:
            raise _Retry(f"http_{status}", detail, _seconds(retry_after))
        if status in _FATAL:
            raise FatalBackendError(f"{self.config.base_url} answered HTTP {status} for model {self.model!r}: {detail}")
        raise BackendError(f"http_{status}", detail)

    @staticmethod
    def _abort(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
        """The deadline passed: break the blocked read (the request thread sees an OSError)."""
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _parse(self, raw: bytes, chat: bool, prompt: str) -> Completion:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] if chat else choice["text"]
            if not isinstance(text, str):
                raise TypeError(f"completion text is {type(text).__name__}")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            detail = redact(f"{type(err).__name__}: {raw[:4000]!r}", self._api_key)[:160]
            raise _Retry("malformed", detail, malformed=True) from err
        usage = data.get("usage") if isinstance(data, dict) else None
        model = data.get("model") if isinstance(data.get("model"), str) else None
        try:
            return Completion(text, int(usage["prompt_tokens"]), int(usage["completion_tokens"]), model=model)
        except (TypeError, KeyError, ValueError):
            return Completion(text, estimate_tokens(prompt), estimate_tokens(text), usage_reported=False, model=model)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
