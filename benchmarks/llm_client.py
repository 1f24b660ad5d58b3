"""LLM profile generation benchmarks against the local test server.

    python benchmarks/llm_client.py [--latency 0.2 1.0] [--concurrency 4 16 32 64] [--users 300]
                                    [--markdown llm.md]

1. Client throughput: the profile generator (render + request + quality gates) over the
   OpenAI-compatible backend, against a server with fixed latency L, at concurrency C.
   Ideal throughput is C / L requests per second; the goal is achieved / ideal >= 0.9.
2. Incremental refresh: the Spark profile job over `--users` users, then again after
   10% of the histories changed. Goal: the re-run makes <= 12% of the full run's calls.
   Calls are counted by the server, retries included.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from profile_features.config import JobConfig, SampleConfig, SparkConfig
from profile_features.datasets import generate_sample
from profile_features.histories import build_histories, history_events
from profile_features.profiles.base import UserHistory
from profile_features.profiles.config import ProfileConfig
from profile_features.profiles.stage import make_generator

ROOT = Path(__file__).resolve().parents[1]
# The fake server and the helper that simulates new activity are test code: they live in tests/support/.
SUPPORT = ROOT / "tests" / "support"


def load_test_support(name: str):
    """tests/support/<name>.py loaded from its file: the benchmark puts nothing of the tests on sys.path."""
    spec = importlib.util.spec_from_file_location(f"tests_support_{name}", SUPPORT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their class's module up while it executes
    spec.loader.exec_module(module)
    return module


FakeOpenAIServer = load_test_support("fake_openai").FakeOpenAIServer
append_event_to_histories = load_test_support("llm").append_event_to_histories

CUTOFF = "2030-01-01T00:00:00Z"


def profile_settings(server, concurrency: int) -> dict:
    return {
        "generator": "openai",
        "openai": {
            "base_url": server.base_url,
            "model": "fake-llm",
            "max_concurrency": concurrency,
            "timeout_s": 30,
            "api_key_env": None,
        },
    }


class ServerProcess:
    """The test server in its own process, as a real server is: it must not share the
    client's interpreter (and GIL)."""

    def __init__(self, latency: float):
        self.process = subprocess.Popen(
            [sys.executable, str(SUPPORT / "fake_openai.py"), "--latency", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.process.stdout.readline().strip()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def throughput(latency: float, concurrency: int, users: list[UserHistory]) -> dict:
    with ServerProcess(latency) as server:
        config = ProfileConfig.model_validate(
            {**profile_settings(server, concurrency), "prompt": {"max_prompt_tokens": 8000}}
        )
        generator = make_generator(config)
        list(generator.run(users[: concurrency * 2]))  # warm up
        started = time.perf_counter()
        outcomes = list(generator.run(users))
        elapsed = time.perf_counter() - started
    calls = sum(o.calls for o in outcomes)  # one request per user: no retries, no chunks
    assert all(o.status == "ok" for o in outcomes) and calls == len(users)
    achieved = calls / elapsed
    ideal = concurrency / latency
    return {
        "latency_s": latency,
        "concurrency": concurrency,
        "requests": calls,
        "seconds": round(elapsed, 3),
        "achieved_rps": round(achieved, 2),
        "ideal_rps": round(ideal, 2),
        "ratio": round(achieved / ideal, 3),
    }


def change_histories(folder: Path, fraction: float) -> int:
    """Append an event to `fraction` of the users' histories (new hash), in place."""
    users = pd.read_parquet(folder, columns=["user_id"]).user_id.sort_values()
    chosen = users.iloc[:: round(1 / fraction)].tolist()
    append_event_to_histories(folder, chosen)
    return len(chosen)


def incremental(n_users: int, fraction: float) -> dict:
    from profile_features.pipeline import write_inputs
    from profile_features.spark.registry import run_stage
    from profile_features.spark.session import build_spark
    from profile_features.spark.stages import run_validate

    spark = build_spark(SparkConfig(master="local[2]", conf={"spark.sql.shuffle.partitions": "4"}))
    sample = generate_sample(SampleConfig(users=n_users, items=300, mean_interactions=40, seed=1))
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency_s=0.02) as server:
        inputs = write_inputs(sample.interactions, sample.items, Path(tmp) / "raw")
        config = JobConfig.model_validate(
            {
                "data_dir": f"{tmp}/data",
                "inputs": inputs.model_dump(),
                "history": {"cutoff": CUTOFF, "max_length": 50},
                "spark": {"master": "local[2]"},
                "profile": profile_settings(server, 8),
            }
        )
        run_validate(spark, config)
        run_stage(spark, config, "build_histories")
        full = run_stage(spark, config, "generate_profiles").summary()
        full_calls = server.calls
        changed = change_histories(Path(config.table_path("histories")) / f"run_date={CUTOFF[:10]}", fraction)
        server.reset()
        again = run_stage(spark, config, "generate_profiles").summary()
        rerun_calls = server.calls
    spark.stop()
    return {
        "users": full["users"],
        "changed_users": changed,
        "full_calls": full_calls,
        "rerun_calls": rerun_calls,
        "rerun_cache_hits": again["cache_hits"],
        "chunked_users_full": full["chunked_users"],
        "full_tokens_in": full["tokens_in"],
        "full_tokens_out": full["tokens_out"],
        "full_generation_s": full["generation_s"],
        "call_ratio": round(rerun_calls / full_calls, 4),
    }


def markdown(results: dict, command: str) -> str:
    rows = "\n".join(
        f"| {r['latency_s']} | {r['concurrency']} | {r['requests']} | {r['seconds']} | {r['achieved_rps']} | "
        f"{r['ideal_rps']} | **{r['ratio']}** |"
        for r in results["throughput"]
    )
    inc = results["incremental"]
    return f"""## LLM profile generation (benchmarks/llm_client.py)

Command: `{command}`
Machine: {results["machine"]}. Server: `tests.support.fake_openai.FakeOpenAIServer` (threaded, keep-alive)
in its own process, fixed latency per request; the client is the real generator path (prompt rendering,
HTTP client with bounded concurrency, quality gates) in one Python process, as in one Spark worker.

### Throughput vs C / L (goal: ratio >= 0.9)

| L (s) | C | requests | seconds | achieved req/s | ideal C/L | ratio |
|---|---|---|---|---|---|---|
{rows}

### Incremental refresh (goal: re-run calls <= 12% of the full run's)

Spark job (`run_profiles`, local[2]) over {inc["users"]} users (history max 50 events, default prompt budget:
{inc["chunked_users_full"]} users were chunked and aggregated), then {inc["changed_users"]} users' histories changed
({inc["changed_users"] / inc["users"]:.0%}) and the job ran again. Calls counted by the server.

| full-run calls | re-run calls | re-run cache hits | ratio |
|---|---|---|---|
| {inc["full_calls"]} | {inc["rerun_calls"]} | {inc["rerun_cache_hits"]} | **{inc["call_ratio"]}** |

Full run: {inc["full_tokens_in"]} tokens in, {inc["full_tokens_out"]} tokens out (server-reported usage),
{inc["full_generation_s"]} s of generation.
"""


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.2, 1.0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16, 32, 64])
    parser.add_argument("--requests-per-slot", type=int, default=15)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--markdown", help="write the results section to this file")
    args = parser.parse_args(argv)

    sample = generate_sample(
        SampleConfig(users=max(args.concurrency) * args.requests_per_slot, items=200, mean_interactions=20, seed=2)
    )
    frame = sample.interactions.merge(sample.items, on="item_id")
    histories = build_histories(frame, sample.interactions.timestamp.max().to_pydatetime(), 30)
    users = [UserHistory(r.user_id, history_events(r.history_json), r.history_hash) for r in histories.itertuples()]
    results = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "throughput": [],
    }
    for latency in args.latency:
        for c in args.concurrency:
            row = throughput(latency, c, users[: c * args.requests_per_slot])
            results["throughput"].append(row)
            print(json.dumps(row), flush=True)
    results["incremental"] = incremental(args.users, args.fraction)
    print(json.dumps(results["incremental"]), flush=True)
    command = "python benchmarks/llm_client.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = markdown(results, command.strip())
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return results


if __name__ == "__main__":
    main()
