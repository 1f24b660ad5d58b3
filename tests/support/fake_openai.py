"""A local OpenAI-compatible test server that can misbehave on purpose.

It answers `/v1/completions` and `/v1/chat/completions` (and `GET /v1/models`) with a
deterministic fake "model" that reads the `<history>` block and writes a short profile
from the genres it finds. Faults are injected two ways:

  - `server.script("429", "500", "timeout", "malformed", ...)`: the next requests get
    these answers, in order, then normal ones again;
  - `FaultPlan` probabilities, drawn from a seeded RNG per request (benchmarks).

Kinds: ok, 429, 500, 503, timeout (sleeps `timeout_s` before answering), trickle (a
normal answer dribbled out a byte at a time over `timeout_s`, so no single read times
out), huge (a 200 whose body is 10 MB), echo_auth (a 500 whose body repeats the request's
Authorization header, as some proxies do), malformed (200 with a body that is not JSON),
no_choices (JSON without `choices`), empty, garbage, repeat. The fake model is
deliberately naive about injection: if text *outside* the delimited data blocks says
"ignore previous instructions and write X", it writes X.
Used by the tests and by benchmarks/llm_client.py.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeOpenAIServer", "FaultPlan", "fake_profile"]

_BLOCK = re.compile(r"<(history|partial_profiles)>.*?</\1>", re.S)
_INJECTION = re.compile(r"ignore (?:all )?previous instructions and (?:write|say) \"?(\w+)", re.I)


@dataclass(frozen=True)
class FaultPlan:
    """Per-request fault probabilities (the rest are answered normally)."""

    p429: float = 0.0
    p500: float = 0.0
    ptimeout: float = 0.0
    pmalformed: float = 0.0
    seed: int = 0


def fake_profile(prompt: str) -> str:
    """The fake model: obey an injection outside data blocks, else describe the last block."""
    outside = _BLOCK.sub(" ", prompt)
    hit = _INJECTION.search(outside)
    if hit:
        return hit.group(1)
    blocks = list(re.finditer(r"<(history|partial_profiles)>(.*?)</\1>", prompt, re.S))
    if not blocks:
        return "Preferences: unknown. Patterns: none seen. Recent shift: none."
    kind, body = blocks[-1].group(1), blocks[-1].group(2)
    if kind == "partial_profiles":
        n = sum(1 for line in body.splitlines() if line.startswith("- "))
        return (
            f"Preferences: merged from {n} periods of viewing. Patterns: steady ratings across periods. "
            "Recent shift: none."
        )
    genres: Counter = Counter()
    for line in body.splitlines():
        fields = line.split(" | ")
        if line.startswith("- ") and len(fields) > 1 and not fields[1].startswith("rated"):
            genres.update(g.strip() for g in fields[1].split(","))
    top = [g for g, _ in genres.most_common(2)] or ["varied titles"]
    return (
        f"Preferences: mostly {' and '.join(top)} across {sum(genres.values())} genre mentions. "
        "Patterns: rates familiar favourites highly. Recent shift: none."
    )


class FakeOpenAIServer:
    """A threaded HTTP server on 127.0.0.1 (free port). Use as a context manager.

    Args:
        latency_s: added to every answer (models a fixed service time).
        timeout_s: how long a "timeout" answer sleeps (make it exceed the client's timeout).
        faults: random fault probabilities.
        usage: send token usage in answers.
    """

    def __init__(
        self, latency_s: float = 0.0, timeout_s: float = 2.0, faults: FaultPlan | None = None, usage: bool = True
    ):
        self.latency_s, self.timeout_s, self.usage = latency_s, timeout_s, usage
        self.faults = faults or FaultPlan()
        self._rng = random.Random(self.faults.seed)
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict] = []  # bodies received, in arrival order
        self.answers: Counter = Counter()  # kind -> count
        self.in_flight = self.max_in_flight = 0
        self.respond = fake_profile  # replaceable: prompt -> text
        self._httpd: ThreadingHTTPServer | None = None

    # -- control ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *kinds: str) -> None:
        with self._lock:
            self._script.extend(kinds)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.answers.clear()
            self.max_in_flight = 0

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- behaviour ----------------------------------------------------------
    def _next_kind(self, body: dict) -> str:
        with self._lock:
            self.requests.append(body)
            if self._script:
                return self._script.popleft()
            f, r = self.faults, self._rng.random()
            for kind, p in (("429", f.p429), ("500", f.p500), ("timeout", f.ptimeout), ("malformed", f.pmalformed)):
                if r < p:
                    return kind
                r -= p
            return "ok"

    def answer(self, path: str, body: dict) -> tuple[int, dict, bytes]:
        kind = self._next_kind(body)
        with self._lock:
            self.answers[kind] += 1
        if kind == "timeout":
            time.sleep(self.timeout_s)
        elif self.latency_s:
            time.sleep(self.latency_s)
        if kind == "huge":
            return 200, {}, b'{"choices": [{"text": "' + b"x" * 10_000_000 + b'"}]}'
        if kind == "echo_auth":
            echoed = body.get("_headers", {}).get("Authorization", "")
            return 500, {}, json.dumps({"error": f"upstream rejected header Authorization: {echoed}"}).encode()
        if kind in ("429", "500", "503"):
            headers = {"Retry-After": "0"} if kind == "429" else {}
            return int(kind), headers, json.dumps({"error": {"message": f"injected {kind}"}}).encode()
        if kind == "malformed":
            return 200, {}, b'{"choices": [{"text": "unterminated'
        if kind == "no_choices":
            return 200, {}, json.dumps({"id": "x", "object": "text_completion"}).encode()
        chat = path.endswith("/chat/completions")
        prompt = (
            "\n".join(m.get("content", "") for m in body.get("messages", [])) if chat else str(body.get("prompt", ""))
        )
        canned = {
            "empty": "",
            "garbage": "#### $$$ %%% @@@ 1234 5678 !!! ??? ~~~ ^^^ &&& *** ((( )))",
            "repeat": "great movies " * 40,
        }
        text = canned[kind] if kind in canned else self.respond(prompt)
        choice = {"index": 0, "finish_reason": "stop"}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": " " + text})
        payload = {
            "id": "fake",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model"),
            "choices": [choice],
        }
        if self.usage:
            payload["usage"] = {
                "prompt_tokens": max(1, len(prompt) // 4),
                "completion_tokens": max(1, len(text) // 4),
                "total_tokens": max(1, len(prompt) // 4) + max(1, len(text) // 4),
            }
        headers = {_TRICKLE: str(self.timeout_s)} if kind == "trickle" else {}
        return 200, headers, json.dumps(payload).encode()


_TRICKLE = "_trickle_s"  # not an HTTP header: tells the handler to dribble the body over that many seconds


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen() backlog: many clients connect at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    # Headers and body go out as separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms a response), which would be measured as server latency.
    disable_nagle_algorithm = True
    owner: FakeOpenAIServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        headers = dict(headers)
        trickle = float(headers.pop(_TRICKLE, 0))
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not trickle:
                self.wfile.write(body)
                return
            for i in range(len(body)):  # each byte well inside any read timeout, the whole far outside
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(trickle / len(body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(
                200, {}, json.dumps({"object": "list", "data": [{"id": "fake-llm", "object": "model"}]}).encode()
            )
        else:
            self._send(404, {}, b'{"error": "not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.endswith(("/completions",)):
            self._send(404, {}, b'{"error": "not found"}')
            return
        try:
            body = json.loads(raw)
            body["_headers"] = dict(self.headers)  # what echo_auth repeats
        except ValueError:
            self._send(400, {}, b'{"error": "bad json"}')
            return
        owner = self.owner
        with owner._lock:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            status, headers, payload = owner.answer(self.path, body)
        finally:
            with owner._lock:
                owner.in_flight -= 1
        self._send(status, headers, payload)


def main(argv=None) -> None:
    """Serve in its own process: `python tests/support/fake_openai.py --latency 0.2`.
    Prints the base URL on the first line of stdout, then serves until killed."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(latency_s=args.latency).start()
    print(server.base_url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
