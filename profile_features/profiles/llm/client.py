"""An OpenAI-compatible HTTP backend (chat and plain completions) with bounded
concurrency, retries with exponential backoff and jitter, and typed failures.

Standard library only (http.client, one keep-alive connection per thread), so the
`llm` extra adds nothing for this backend. The API key is read from the environment
variable the config names; it is sent as a bearer token and never logged, printed or
put in an exception message or a completion: every string that leaves this module from a
server (error details, completion text, the model name) is redacted of the key in every form
a server may echo it (as sent, JSON-, URL-, HTML- or base64-encoded, any case, or a long
piece of it), of bearer tokens and `sk-...` keys, since a server or proxy may echo the
request's headers back, in an error body or inside a completion. Token usage a server
reports is bounded by what the request allows (`max_tokens`, the prompt's bytes); an
implausible figure is replaced by the estimate.

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

import base64
import dataclasses
import html
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
from urllib.parse import quote, quote_plus, urlsplit

from profile_features.profiles.config import OpenAIConfig
from profile_features.profiles.pii import SECRET, scrub_private

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
# A piece of the key this long is redacted on its own (a server may echo a truncated key).
_MIN_PIECE = 8


def _forms(secret: str) -> set[str]:
    """The shapes a server may echo `secret` in: as sent, JSON-escaped, URL- and HTML-encoded, as a
    Python bytes literal, base64 (alone or as Basic credentials)."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        quote(secret, safe=""),
        quote_plus(secret),
        html.escape(secret),
        repr(secret.encode())[2:-1],
    }
    for raw in (secret, f":{secret}"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms |= {encoded, encoded.rstrip("=")}
    return {form for form in forms if form}


def _pattern(secrets) -> re.Pattern | None:
    """One case-insensitive pattern for every form of every secret, and for long pieces of the key
    as sent (its first and last `_MIN_PIECE`-or-more characters: a truncated or partly masked echo)."""
    alternatives: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        alternatives |= {re.escape(form) for form in _forms(secret)}
        if len(secret) >= 2 * _MIN_PIECE:
            piece = max(_MIN_PIECE, len(secret) // 3)
            alternatives |= {re.escape(secret[:piece]), re.escape(secret[-piece:])}
    if not alternatives:
        return None
    return re.compile("|".join(sorted(alternatives, key=len, reverse=True)), re.IGNORECASE)


def redact(text: str, *secrets: str | None, placeholder: str = "***", pattern: re.Pattern | None = None) -> str:
    """`text` without the given secrets (in any shape `_pattern` knows), bearer tokens or `sk-` keys.
    `pattern`: `_pattern(secrets)` compiled once by a caller that redacts often."""
    pattern = pattern or _pattern(secrets)
    if pattern is not None:
        text = pattern.sub(placeholder, text)
    return _SECRETS.sub(lambda m: (m.group(1) or "") + placeholder, text)


def _safe_url(url: str) -> str:
    """`url` without user:password@ (a credential in a base URL never reaches a message)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


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
        # What this client may hold as a credential: the key and a password in the base URL.
        self._secrets = _pattern([self._api_key, parts.password])
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._local = threading.local()
        self._sleep, self._rng = sleep, rng or random.Random()

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatibleBackend(base_url={_safe_url(self.config.base_url)!r}, model={self.model!r})"

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
            return self._parse(raw, request)
        # Redact the whole body, then cut; an error body may quote the prompt, so personal data goes too.
        detail = scrub_private(self._redact(raw.decode("utf-8", "replace")))[:200]
        if status in _RETRYABLE or status >= 500:
            raise _Retry(f"http_{status}", detail, _seconds(retry_after))
        if status in _FATAL:
            url = _safe_url(self.config.base_url)
            raise FatalBackendError(f"{url} answered HTTP {status} for model {self.model!r}: {detail}")
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

    def _redact(self, text: str, placeholder: str = "***") -> str:
        return redact(text, placeholder=placeholder, pattern=self._secrets)

    def _parse(self, raw: bytes, request: CompletionRequest) -> Completion:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] if request.messages is not None else choice["text"]
            if not isinstance(text, str):
                raise TypeError(f"completion text is {type(text).__name__}")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            detail = f"{type(err).__name__}: {self._redact(raw.decode('utf-8', 'replace'))!r}"[:160]
            raise _Retry("malformed", detail, malformed=True) from err
        # A completion that echoes the credential keeps a placeholder the output gate rejects.
        text = self._redact(text, placeholder=SECRET)
        model = self._redact(data["model"])[:200] if isinstance(data.get("model"), str) else None
        usage = _usage(data.get("usage"), request)
        if usage is None:
            prompt = request.text
            return Completion(text, estimate_tokens(prompt), estimate_tokens(text), usage_reported=False, model=model)
        return Completion(text, *usage, model=model)


def _count(value) -> int | None:
    """A token count as a server sent it: a whole non-negative number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    return int(value) if float(value).is_integer() else None


def _usage(usage, request: CompletionRequest) -> tuple[int, int] | None:
    """(prompt, completion) tokens the server reported, when plausible: the completion within
    `max_tokens` (a little slack for a stop token), the prompt within its UTF-8 bytes plus a chat
    template's overhead (no tokenizer makes more tokens than bytes). Else None: estimate."""
    if not isinstance(usage, dict):
        return None
    tokens_in, tokens_out = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if tokens_in is None or tokens_out is None:
        return None
    messages = len(request.messages or ())
    if tokens_out > request.max_tokens + 8 or tokens_in > len(request.text.encode()) + 16 * messages + 64:
        return None
    return tokens_in, tokens_out


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
