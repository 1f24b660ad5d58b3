"""Plain SASRec vs SASRec + profile distillation on MovieLens ml-100k.

    .venv/bin/python benchmarks/student_quality.py --data ../shared/datasets/ml-100k \
        --variants plain,published,default --seeds 0 1 2 --out student_quality.json

Protocol (leave-last-out): each user's last item is the test target, the next-to-last the
validation target (the best validation epoch is kept), the rest is training. Full ranking over all items, seen
items not removed. Profiles are written by the rule-based writer from the *training part only*
(`build_profile_texts` receives nothing else), embedded with all-MiniLM-L6-v2.
`--profile-config configs/llm_openai.yaml` writes them with that config's LLM instead, through the
profile job's own generator (texts cached in --cache-dir, so an interrupted run resumes); check
those profiles with benchmarks/profile_fidelity.py first.
`--protocol temporal` runs the paper's protocol instead: global cutoff at the 0.8 quantile of
timestamps, profiles and training from interactions before it, target = each test user's last item.
Same budget for every variant: every epoch runs (patience off unless `--set train.patience=N`),
the best validation epoch is kept, same seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from profile_features.config import load_config  # noqa: E402
from profile_features.embeddings import SentenceTransformerEncoder  # noqa: E402
from profile_features.histories import history_hash  # noqa: E402
from profile_features.llm.generator import FALLBACK_GENERATOR  # noqa: E402
from profile_features.profiles.base import UserHistory  # noqa: E402
from profile_features.profiles.rule_based import RuleBasedProfileWriter  # noqa: E402
from profile_features.profiles.stage import make_generator  # noqa: E402
from student.config import load_student_config  # noqa: E402
from student.data import ItemIndex, leave_last_out, temporal_split, user_sequences  # noqa: E402
from student.evaluation import evaluate, summarise_seeds  # noqa: E402
from student.training import build_training_data, fit  # noqa: E402

# name -> (config file, overrides). Every variant shares configs/student.yaml's body and training
# budget; the published one swaps in its distillation block.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "plain": ("configs/student.yaml", ["distill.enabled=false", "name=plain"]),
    "published": ("configs/student_published.yaml", []),
    "default": ("configs/student.yaml", []),
    # The default until alpha 0.1 / first 30% of epochs measured better (BENCHMARKS.md, Student).
    "centred_infonce": (
        "configs/student.yaml",
        ["distill.alpha=0.4", "distill.distill_fraction=1.0", "name=centred_infonce"],
    ),
}
GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def load_ml100k(root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions: user_id, item_id, rating, timestamp[int s]; items: item_id, title, genres list, year)."""
    root = Path(root)
    inter = pd.read_csv(root / "u.data", sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    cols = ["item_id", "title", "release", "video", "url", *GENRES]
    raw = pd.read_csv(root / "u.item", sep="|", names=cols, encoding="latin-1")
    year = raw["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype(float)
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"].astype(str),
            "title": raw["title"].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True),
            "genres": [[g for g in GENRES[1:] if row[g]] for _, row in raw.iterrows()],
            "year": [None if np.isnan(y) else int(y) for y in year],
        }
    )
    return inter, items


def profile_writer(config_path: str | None = None, overrides: list[str] | None = None):
    """The profile generator: the rule-based writer, or the `profile:` section of a job config
    (e.g. configs/llm_openai.yaml), built exactly as the profile job builds it."""
    if config_path is None:
        return RuleBasedProfileWriter()
    return make_generator(load_config(config_path, overrides or []).profile)


def training_events(
    user: str, hist: list[str], ratings: dict[tuple[str, str], float], catalogue: pd.DataFrame
) -> list[dict]:
    """One user's history as profile-writer events (oldest first), with catalogue metadata."""
    events = []
    for item in hist:
        row = catalogue.loc[item] if item in catalogue.index else None
        events.append(
            {
                "item_id": item,
                "rating": ratings.get((user, item)),
                "title": None if row is None else row["title"],
                "genres": [] if row is None else list(row["genres"]),
                "year": None if row is None else row["year"],
                "event_type": "rating",
                "description": "",
            }
        )
    return events


def build_profile_texts(
    train_histories: dict[str, list[str]],
    ratings: dict[tuple[str, str], float],
    items: pd.DataFrame,
    generator,
    cache: Path | None = None,
) -> dict[str, str]:
    """Profile text per user from that user's *training* history only.

    Args:
        train_histories: user -> item ids before the split (oldest -> newest). Nothing after the
            split is passed in, so the profile cannot see validation or test items.
        ratings: (user, item) -> rating, looked up only for items in the training history.
        items: Catalogue with item_id, title, genres (list), year.
        generator: a `ProfileGenerator` (`profile_writer()`).
        cache: JSON lines of (user, history hash, text), appended every 32 users, so an LLM run of
            hours resumes where it stopped; only lines whose history hash matches are reused.
    """
    catalogue = items.set_index("item_id")
    histories = []
    for user, hist in train_histories.items():
        events = training_events(user, hist, ratings, catalogue)
        histories.append(UserHistory(user, events, history_hash(json.dumps(events, sort_keys=True, default=str))))
    done: dict[tuple[str, str], dict] = {}
    if cache is not None and cache.exists():
        for number, line in enumerate(cache.read_text().splitlines(), 1):
            try:
                row = json.loads(line)
                done[(row["user_id"], row["history_hash"])] = row
            except (ValueError, KeyError, TypeError) as err:  # e.g. a line cut short by a kill
                raise ValueError(
                    f"{cache}: line {number} is not a cached profile ({err!r}); "
                    "delete that line (its user is generated again) or the file"
                ) from err
    todo = [h for h in histories if (h.user_id, h.history_hash) not in done]
    for start in range(0, len(todo), 32):
        batch = todo[start : start + 32]
        rows = [
            {"user_id": h.user_id, "history_hash": h.history_hash, "text": p.text, "generator": p.generator}
            for h, p in zip(batch, generator.generate(batch))
        ]
        done.update({(r["user_id"], r["history_hash"]): r for r in rows})
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("a") as out:
                out.writelines(json.dumps(r) + "\n" for r in rows)
    used = [done[(h.user_id, h.history_hash)] for h in histories]
    fallbacks = sum(r["generator"] == FALLBACK_GENERATOR for r in used)
    if fallbacks:  # an LLM's failed users get rule-based profiles: the targets are then a mix
        print(f"profiles: {fallbacks} of {len(used)} users fell back to the rule-based writer", file=sys.stderr)
    return {r["user_id"]: r["text"] for r in used}


def embed_texts(texts: dict[str, str], cache_dir: Path) -> dict[str, np.ndarray]:
    """Encode with all-MiniLM-L6-v2; cached by a hash of encoder name + every (user, text)."""
    users = sorted(texts)
    key = hashlib.sha256(json.dumps(["all-MiniLM-L6-v2", [(u, texts[u]) for u in users]]).encode()).hexdigest()[:16]
    path = cache_dir / f"profiles-{key}.npy"
    if path.exists():
        mat = np.load(path)
    else:
        mat = np.asarray(SentenceTransformerEncoder(threads=2).encode([texts[u] for u in users]), dtype=np.float32)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(path, mat)
    return {u: mat[i] for i, u in enumerate(users)}


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = x @ x.T
    n = len(x)
    return float((sims.sum() - n) / (n * (n - 1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/ml-100k"))
    ap.add_argument("--variants", default="plain,published,default")
    ap.add_argument(
        "--custom",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDES"),
        help="extra variant on configs/student.yaml: NAME 'k=v k=v'",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--protocol", choices=["loo", "temporal"], default="loo")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override for every variant")
    ap.add_argument("--cache-dir", default="/tmp/student_benchmark_cache")
    ap.add_argument(
        "--profile-config",
        default=None,
        help="job config whose profile: section writes the profiles (default: the rule-based writer)",
    )
    ap.add_argument("--profile-set", action="append", default=[], help="override for --profile-config")
    ap.add_argument("--out", default=None, help="write all runs and summaries as JSON")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    inter, items = load_ml100k(args.data)
    ratings = {(u, i): float(r) for u, i, r in zip(inter["user_id"], inter["item_id"], inter["rating"])}
    item_index = ItemIndex.from_items(items["item_id"])
    if args.protocol == "loo":
        split = leave_last_out(user_sequences(inter))
        train_hist = split.train
        users = sorted(split.test_target)
        valid = (
            [item_index.encode(train_hist[u]) for u in users],
            item_index.encode([split.valid_target[u] for u in users]),
        )
        test = (
            [item_index.encode(split.test_input(u)) for u in users],
            item_index.encode([split.test_target[u] for u in users]),
        )
    else:
        tsplit = temporal_split(inter, 0.8)
        train_hist = {u: s for u, s in tsplit.train.items() if len(s) >= 3}
        # Validation for early stopping: last pre-cutoff item of each training user.
        vusers = sorted(train_hist)
        valid = (
            [item_index.encode(train_hist[u][:-1]) for u in vusers],
            item_index.encode([train_hist[u][-1] for u in vusers]),
        )
        tusers = sorted(tsplit.test_target)
        test = (
            [item_index.encode(tsplit.test_input[u]) for u in tusers],
            item_index.encode([tsplit.test_target[u] for u in tusers]),
        )
        train_hist = {u: s[:-1] for u, s in train_hist.items()}
    generator = profile_writer(args.profile_config, args.profile_set)
    writer_name = f"{generator.name}/{generator.model}/{generator.prompt_version}"
    text_cache = None
    if args.profile_config:  # LLM runs take hours: resumable, keyed by generator and prompt version
        slug = hashlib.sha256(writer_name.encode()).hexdigest()[:12]
        text_cache = Path(args.cache_dir) / f"profile-texts-{args.protocol}-{slug}.jsonl"
    t0 = time.perf_counter()
    texts = build_profile_texts(train_hist, ratings, items, generator, text_cache)
    profiles = embed_texts(texts, Path(args.cache_dir))
    mat = np.stack([profiles[u] for u in sorted(profiles)])
    print(
        f"profiles: {len(profiles)} by {writer_name}, dim {mat.shape[1]}, mean pairwise cosine "
        f"{mean_pairwise_cosine(mat):.3f} ({time.perf_counter() - t0:.0f}s)",
        file=sys.stderr,
    )
    data = build_training_data(train_hist, item_index, profiles)

    variants = {name: VARIANTS[name] for name in args.variants.split(",") if name}
    for name, overrides in args.custom:
        variants[name] = ("configs/student.yaml", [f"name={name}", *overrides.split()])
    results: dict[str, dict] = {}
    for name, (cfg_path, var_overrides) in variants.items():
        runs = []
        for seed in args.seeds:
            # Same budget for every variant: all epochs, best validation epoch kept. Early stopping
            # is unequal here (a distillation phase postpones patience), and cut plain runs short.
            cfg = load_student_config(
                ROOT / cfg_path, ["train.patience=null", *var_overrides, *args.overrides, f"train.seed={seed}"]
            )
            log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
            res = fit(cfg, data, valid, log=log)
            metrics = evaluate(res.model, *test).as_dict()
            metrics.update(best_epoch=res.best_epoch, seconds=round(res.seconds, 1))
            runs.append(metrics)
            print(
                f"{name} seed {seed}: "
                + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()),
                flush=True,
            )
        summary = summarise_seeds([{k: r[k] for k in ("ndcg@10", "recall@10", "hr@10", "mrr")} for r in runs])
        results[name] = {"config": cfg_path, "overrides": var_overrides, "runs": runs, "summary": summary}
    print(f"\nprotocol {args.protocol}, seeds {args.seeds}, users {len(test[0])}, items {len(item_index)}")
    print("| variant | NDCG@10 | Recall@10 = HR@10 | MRR | best epochs |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        s = r["summary"]
        epochs = ",".join(str(x["best_epoch"]) for x in r["runs"])
        print(
            f"| {name} | {s['ndcg@10'][0]:.4f} +/- {s['ndcg@10'][1]:.4f} | {s['hr@10'][0]:.4f} +/- {s['hr@10'][1]:.4f} "
            f"| {s['mrr'][0]:.4f} +/- {s['mrr'][1]:.4f} | {epochs} |"
        )
    if "plain" in results:
        base = results["plain"]["summary"]["ndcg@10"]
        for name, r in results.items():
            if name != "plain":
                m, sd = r["summary"]["ndcg@10"]
                lift = 100 * (m / base[0] - 1) if base[0] > 0 else float("nan")
                print(
                    f"{name}: NDCG@10 lift over plain {lift:+.1f}% (diff {m - base[0]:+.4f}, "
                    f"plain std {base[1]:.4f}, {name} std {sd:.4f})"
                )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"protocol": args.protocol, "seeds": args.seeds, "profile_writer": writer_name, "results": results},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
