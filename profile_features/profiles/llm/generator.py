"""`LLMProfileGenerator`: one user's path from history to profile, for any backend.

A user's path is written once, as a coroutine that yields `CompletionRequest`s and
receives `Completion`s: render (chunked if the history is long) -> generate -> quality
gate (regenerate on reject) -> aggregate chunk profiles -> profile, or the rule-based
fallback with its reason. Two schedulers drive these coroutines:

  - concurrent (HTTP backends): a thread pool of `max_concurrency` runs users in
    parallel, each blocking on its own requests;
  - batched (local models): all pending requests of the active users are gathered and
    generated `batch_size` at a time.

Outcomes come back in completion order (`run`), so a Spark worker can checkpoint as it
goes; `generate` returns them in input order, as the `ProfileGenerator` Protocol asks.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Protocol

from profile_features.profiles.base import FALLBACK_GENERATOR, GeneratedProfile, Rejection, UserHistory, UserOutcome
from profile_features.profiles.config import QualityConfig
from profile_features.profiles.llm.client import BackendError, Completion, CompletionRequest
from profile_features.profiles.llm.prompts import PromptRenderer
from profile_features.profiles.llm.quality import QualityGate
from profile_features.profiles.rule_based import RuleBasedProfileWriter

__all__ = ["Backend", "LLMProfileGenerator", "UserOutcome", "Rejection", "FALLBACK_GENERATOR"]


class Backend(Protocol):
    """What the generator needs from a backend.

    Concurrent backends (`batch_size` None) implement `complete`; batching backends
    implement `complete_batch`, returning a `Completion` or a `BackendError` per request.
    """

    name: str
    model: str
    batch_size: int | None
    max_concurrency: int

    def complete(self, request: CompletionRequest) -> Completion: ...


class _GateFailure(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_Flow = Generator[CompletionRequest, Completion, UserOutcome]
_DONE = object()


class LLMProfileGenerator:
    """A `ProfileGenerator` over an LLM backend, with quality gates and rule-based fallback.

    Args:
        backend: an `OpenAICompatibleBackend`, a `TransformersBackend` or any `Backend`.
        renderer: prompt template and budget; its `version` is the prompt provenance.
        quality: output gates.
        fallback: the writer used when a user gets no acceptable output.
    """

    def __init__(
        self,
        backend: Backend,
        renderer: PromptRenderer,
        quality: QualityConfig,
        fallback: RuleBasedProfileWriter | None = None,
    ):
        self.backend, self.renderer = backend, renderer
        self.gate, self.quality = QualityGate(quality), quality
        self.fallback = fallback or RuleBasedProfileWriter()
        self.name, self.model, self.prompt_version = backend.name, backend.model, renderer.version

    # -- ProfileGenerator ---------------------------------------------------
    def generate(self, histories: Sequence[UserHistory]) -> list[GeneratedProfile]:
        outcomes = sorted(self.run(histories), key=lambda o: o.index)
        return [o.profile for o in outcomes]

    def run(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]:
        """Every user's outcome, in completion order (one per history, none lost)."""
        if getattr(self.backend, "batch_size", None):
            yield from self._run_batched(histories)
        else:
            yield from self._run_concurrent(histories)

    # -- one user -----------------------------------------------------------
    def _flow(self, index: int, history: UserHistory) -> _Flow:
        outcome = UserOutcome(index, history.user_id, history.history_hash, profile=None)  # type: ignore[arg-type]
        chunks = self.renderer.plan(history.events)
        outcome.chunks = len(chunks)
        try:
            summaries = []
            for lines in chunks:
                summaries.append((yield from self._ask(self.renderer.history_request(lines), outcome)))
            text = summaries[0]
            if len(summaries) > 1:
                text = yield from self._ask(self.renderer.aggregate_request(summaries), outcome)
        except (BackendError, _GateFailure) as err:
            reason = err.reason
            outcome.status, outcome.fallback_reason = "fallback", reason
            detail = getattr(err, "detail", "")
            outcome.rejections.append(Rejection(f"fallback:{reason}", detail))
            outcome.profile = GeneratedProfile(
                history.user_id,
                self.fallback.describe(history.events),
                FALLBACK_GENERATOR,
                self.fallback.model,
                self.fallback.prompt_version,
            )
            return outcome
        outcome.profile = GeneratedProfile(history.user_id, text, self.name, self.model, self.prompt_version)
        return outcome

    def _ask(self, request: CompletionRequest, outcome: UserOutcome) -> Generator[CompletionRequest, Completion, str]:
        """Generate until an output passes the gates, at most `quality.attempts` times."""
        reason = "empty"
        for attempt in range(self.quality.attempts):
            if attempt:
                outcome.regenerations += 1
                temperature = max(request.temperature, self.quality.retry_temperature)
                request = dataclasses.replace(request, temperature=temperature)
            try:
                completion = yield request
            except BackendError as err:
                outcome.calls += err.attempts
                outcome.retries += err.attempts - 1
                raise
            outcome.calls += completion.attempts
            outcome.retries += completion.attempts - 1
            outcome.tokens_in += completion.tokens_in
            outcome.tokens_out += completion.tokens_out
            if completion.model:
                outcome.reported_models[completion.model] += 1
            result = self.gate.check(completion.text, request.text, self.renderer.instructions)
            if result.ok:
                return result.text
            reason = result.reason
            outcome.rejections.append(Rejection(result.reason, result.detail, result.text[:2000]))
        raise _GateFailure(f"quality_{reason}")

    # -- schedulers ---------------------------------------------------------
    def _drive(self, index: int, history: UserHistory) -> UserOutcome:
        flow = self._flow(index, history)
        try:
            request = next(flow)
            while True:
                try:
                    completion = self.backend.complete(request)
                except BackendError as err:
                    request = flow.throw(err)
                else:
                    request = flow.send(completion)
        except StopIteration as stop:
            return stop.value

    def _run_concurrent(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]:
        # `max_concurrency` worker threads each pull the next user as soon as theirs is
        # done, so the calling thread is not on any request's path; outcomes come back
        # through a queue as they finish. A FatalBackendError stops every worker.
        workers = min(max(1, self.backend.max_concurrency), max(1, len(histories)))
        pending = iter(enumerate(histories))
        lock, stop = threading.Lock(), threading.Event()
        results: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                while not stop.is_set():
                    with lock:
                        item = next(pending, None)
                    if item is None:
                        break
                    results.put(self._drive(*item))
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                stop.set()
                results.put(err)
            finally:
                results.put(_DONE)

        threads = [threading.Thread(target=work, name=f"llm-{i}", daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        try:
            finished = 0
            while finished < workers:
                item = results.get()
                if item is _DONE:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def _run_batched(self, histories: Sequence[UserHistory]) -> Iterator[UserOutcome]:
        batch_size = self.backend.batch_size
        # A window of active users: enough to fill batches, small enough that finished
        # users come out (and get checkpointed) steadily.
        window = batch_size * 2
        pending = iter(enumerate(histories))
        active: list[tuple[_Flow, CompletionRequest]] = []

        def start(item) -> Iterator[UserOutcome]:
            flow = self._flow(*item)
            try:
                active.append((flow, next(flow)))
            except StopIteration as stop:
                yield stop.value

        for item in pending:
            yield from start(item)
            if len(active) >= window:
                break
        while active:
            round_, rest = active[:batch_size], active[batch_size:]
            results = self.backend.complete_batch([request for _, request in round_])
            active = rest
            for (flow, _), result in zip(round_, results):
                try:
                    request = flow.throw(result) if isinstance(result, BackendError) else flow.send(result)
                    active.append((flow, request))
                except StopIteration as stop:
                    yield stop.value
                    item = next(pending, None)
                    if item is not None:
                        yield from start(item)
