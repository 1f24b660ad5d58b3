"""The student on ml-100k and sparse data: plain SASRec against every variant, on the slices where
item content should help (short histories, long-tail targets, items training never saw).

    .venv/bin/python benchmarks/student_quality.py --dataset ml-100k --variants plain,text_pca,text_pca_distill \
        --seeds 0 1 2 3 4 --set train.epochs=150 --set train.lr=0.002 --set train.num_threads=1 \
        --out benchmarks/results/student_quality.json

Protocol (leave-last-out): each user's last item is the test target, the next-to-last the
validation target (the best validation epoch is kept), the rest is training; users with fewer than
three interactions train on everything and are not evaluated. A random 5% of the items
(`--unseen-fraction`, fixed seed) is removed from training, validation and every input: test users
whose target is one of them form the `unseen` slice. Full ranking over the whole catalogue, seen
items not removed. Slices (student.slices): `all` (targets training saw), `short` (same users and
targets, input cut to its newest 5 items), `long_tail` (targets outside the 20% most-trained
items), `unseen`. Most-popular (training counts) is scored on the same slices.

Profiles are written by the rule-based writer from the *training part only* and embedded with
all-MiniLM-L6-v2 (`--profile-config` swaps in an LLM through the profile job's generator). Item
text: the embedding job's `render_item_text` (title, year, genres, description) embedded by the
same encoder; semantic IDs: residual k-means of those vectors (profile_features.semantic_ids), fitted
on the catalogue's content alone. Same budget for every variant: every epoch runs (patience off
unless `--set train.patience=N`), the best validation epoch is kept, same seeds.

Every finished run is appended to `<cache-dir>/runs-<dataset>.jsonl` (keyed by dataset, variant
config and seed), so runs can be split across processes and resumed; `--out` summarises every
cached run of the requested variants and seeds: mean +/- std per slice, paired differences with
plain SASRec, and whether the lift is larger than the seed spread.
`--protocol temporal` runs the paper's protocol instead (global cutoff at the 0.8 quantile of
timestamps; slice `all` only).

`--protocol post_cutoff` asks the deployment question (issue 31): a global cutoff at the 0.8 quantile
of timestamps; everything before it trains; each user with a history and an item after it is a test
user, whose first `--targets-per-user` items after the cutoff (5, the guard's default) are each ranked
over the whole catalogue from the history before it, a user's NDCG@10 the mean over them (as evaluate's
test and the guard's validation). Models, per seed: `shipped` (configs/student.yaml through the deployment guard,
student/guard.py: whatever variant the pipeline would ship), `configured` (the same config with the
guard off: the configured student always), `distilled` (guard off, no item content: the guard's
without_item_content) and `plain` (plain SASRec, guard off); all pick their epochs on the guard's
validation and are refitted on everything before the cutoff. Most-popular (counts before the cutoff) is
the other baseline. Slices, as evaluate's: `all` test users and `cold`, those with at most 5
interactions before the cutoff. Differences are paired over users and seeds (per-user
means over seeds, so the interval counts users, not user x seed rows). Datasets: ml-100k, the
profile_features.datasets variants, and any CSV pair folder of ../shared/datasets
(`--dataset amazon-digital-music --data ../shared/datasets/amazon-digital-music`).
`--cutoffs 0.6 0.7 0.8 0.9` repeats the whole simulation at each cutoff quantile (rolling origin: every model
retrained on what lies before each cutoff), for power where one cutoff has too few test users: a user tested at
several cutoffs is one observation (the mean of their differences), so the interval still counts users.

    .venv/bin/python benchmarks/student_quality.py --protocol post_cutoff --dataset amazon-digital-music \
        --data ../shared/datasets/amazon-digital-music --seeds 0 1 2 \
        --out benchmarks/results/student_post_cutoff-amazon-digital-music.json
    .venv/bin/python benchmarks/student_quality.py --protocol post_cutoff --dataset amazon-digital-music \
        --data ../shared/datasets/amazon-digital-music --models shipped,plain --seeds 0 1 2 \
        --cutoffs 0.6 0.7 0.8 0.9 --set train.num_threads=1 \
        --out benchmarks/results/student_post_cutoff-amazon-digital-music-rolling.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from profile_features.config import load_config  # noqa: E402
from profile_features.embeddings import SentenceTransformerEncoder, render_item_text  # noqa: E402
from profile_features.histories import history_hash  # noqa: E402
from profile_features.profiles.base import UserHistory  # noqa: E402
from profile_features.profiles.llm.generator import FALLBACK_GENERATOR  # noqa: E402
from profile_features.profiles.rule_based import RuleBasedProfileWriter  # noqa: E402
from profile_features.profiles.stage import make_generator  # noqa: E402
from profile_features.semantic_ids import assign_codes, fit_semantic_ids  # noqa: E402
from profile_features.student.config import load_student_config  # noqa: E402
from profile_features.student.data import ItemIndex, leave_last_out, temporal_split, user_sequences  # noqa: E402
from profile_features.student.evaluation import metrics_from_ranks, ranks_from_scores, target_ranks  # noqa: E402
from profile_features.student.items import ItemFeatures  # noqa: E402
from profile_features.student.slices import SliceSet, evaluation_slices, hold_out_items, without_items  # noqa: E402
from profile_features.student.training import build_training_data, fit  # noqa: E402

# Every variant starts from configs/student.yaml with IDs only (plain SASRec's item side), then applies its
# overrides; BASE is not part of a run's cache key (it only pins what the config defaults were when the
# first runs were made).
BASE = ["items.text=false", "items.adapter_init=random", "items.id_dropout=0.0"]
CONTENT = ["items.text=true", "items.id_dropout=0.1"]
POOL = "unseen_pool"  # the unseen slice ranked among the held-out items only
BASELINES = ("most_popular", "item_text_knn", "random_order")  # scored on every slice, nothing trained
CONTENT_PCA = [*CONTENT, "items.adapter_init=pca"]
# name -> (config file, overrides). Every variant shares configs/student.yaml's body and training
# budget; the published one swaps in its distillation block.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "plain": ("configs/student.yaml", ["distill.enabled=false", "name=plain"]),
    "published": ("configs/student_published.yaml", []),
    # Profile distillation over IDs only: the shipped default before the item views (issue 17).
    "distill": ("configs/student.yaml", []),
    # The default until alpha 0.1 / first 30% of epochs measured better (BENCHMARKS.md, Student).
    "centred_infonce": (
        "configs/student.yaml",
        ["distill.alpha=0.4", "distill.distill_fraction=1.0", "name=centred_infonce"],
    ),
    # Controls and item-side variants (issue 17): no profile distillation unless named.
    "plain_crop": ("configs/student.yaml", ["distill.enabled=false", "train.crop_prob=0.3", "name=plain_crop"]),
    "text": ("configs/student.yaml", ["distill.enabled=false", *CONTENT, "name=text"]),
    "text_pca": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT, "items.adapter_init=pca", "name=text_pca"],
    ),
    "text_pca_drop3": (
        "configs/student.yaml",
        [
            "distill.enabled=false",
            "items.text=true",
            "items.id_dropout=0.3",
            "items.adapter_init=pca",
            "name=text_pca_drop3",
        ],
    ),
    "text_gated": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT, "items.fusion=gated", "name=text_gated"],
    ),
    "text_concat": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT, "items.fusion=concat", "name=text_concat"],
    ),
    "text_concat_distill": (
        "configs/student.yaml",
        [*CONTENT, "items.fusion=concat", "name=text_concat_distill"],
    ),
    "sid": ("configs/student.yaml", ["distill.enabled=false", "items.sid=true", "items.id_dropout=0.1", "name=sid"]),
    "text_sid": ("configs/student.yaml", ["distill.enabled=false", *CONTENT, "items.sid=true", "name=text_sid"]),
    "text_sid_concat": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT, "items.sid=true", "items.fusion=concat", "name=text_sid_concat"],
    ),
    "neighbours": ("configs/student.yaml", ["distill.enabled=false", "neighbours.enabled=true", "name=neighbours"]),
    "text_sid_crop": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT, "items.sid=true", "train.crop_prob=0.3", "name=text_sid_crop"],
    ),
    "text_sid_pca": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT_PCA, "items.sid=true", "name=text_sid_pca"],
    ),
    "text_pca_distill": ("configs/student.yaml", [*CONTENT_PCA, "name=text_pca_distill"]),
    # The shipped default with distillation four times as strong and on for every epoch.
    "text_pca_distill_strong": (
        "configs/student.yaml",
        [*CONTENT_PCA, "distill.alpha=0.4", "distill.distill_fraction=1.0", "name=text_pca_distill_strong"],
    ),
    # The shipped default with distillation twice as strong (between it and `_strong`).
    "text_pca_distill_mid": (
        "configs/student.yaml",
        [*CONTENT_PCA, "distill.alpha=0.2", "name=text_pca_distill_mid"],
    ),
    # The shipped default plus LLM-ESR's self-distillation toward profile neighbours.
    "text_pca_distill_neighbours": (
        "configs/student.yaml",
        [*CONTENT_PCA, "neighbours.enabled=true", "name=text_pca_distill_neighbours"],
    ),
    "text_pca_neighbours": (
        "configs/student.yaml",
        ["distill.enabled=false", *CONTENT_PCA, "neighbours.enabled=true", "name=text_pca_neighbours"],
    ),
    "full": (
        "configs/student.yaml",
        [*CONTENT_PCA, "items.sid=true", "train.crop_prob=0.3", "neighbours.enabled=true", "name=full"],
    ),
}
SLICES = ("all", "short", "long_tail", "unseen")
# Part of the cache key of runs that read item content: bump it when the model code changes what such a
# variant's overrides mean (2: the new-item bias for items without an ID view; 3: the guard's short-history checks;
# 4-7: the trending prior, its wider grid, its evidence rule; the minority slice rule; 8: richer variants must beat
# plain SASRec; 9: trained models must beat most-popular).
CODE_VERSION = 9

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


def embed_texts(texts: dict[str, str], cache_dir: Path, kind: str = "profiles") -> dict[str, np.ndarray]:
    """Encode with all-MiniLM-L6-v2; cached by a hash of encoder name + every (key, text)."""
    users = sorted(texts)
    key = hashlib.sha256(json.dumps(["all-MiniLM-L6-v2", [(u, texts[u]) for u in users]]).encode()).hexdigest()[:16]
    path = cache_dir / f"{kind}-{key}.npy"
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


def load_csv_pair(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A ../shared/datasets CSV pair folder (interactions.csv: user_id, item_id, timestamp in epoch
    seconds, optional rating; items.csv: item_id, title, optional description / genres / year)."""
    folder = Path(folder)
    inter = pd.read_csv(folder / "interactions.csv", dtype={"user_id": str, "item_id": str})
    items = pd.read_csv(folder / "items.csv", dtype={"item_id": str})
    missing = {"user_id", "item_id", "timestamp"} - set(inter.columns)
    if missing:
        raise ValueError(f"{folder / 'interactions.csv'}: missing columns {sorted(missing)}")
    if "rating" not in inter.columns:
        inter["rating"] = np.nan
    inter["timestamp"] = pd.to_numeric(inter["timestamp"]).astype("int64")
    items = items.assign(
        title=items["title"].fillna("").astype(str) if "title" in items.columns else items["item_id"],
        genres=[
            [g for g in str(v).split("|") if g]
            for v in items.get("genres", pd.Series("", index=items.index)).fillna("")
        ],
        year=[None if pd.isna(y) else int(y) for y in items.get("year", pd.Series(np.nan, index=items.index))],
        description=items["description"].fillna("") if "description" in items.columns else "",
    )
    return inter[["user_id", "item_id", "rating", "timestamp"]], items


def load_benchmark_dataset(name: str, data: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions: user_id, item_id, rating, timestamp[int s]; items: item_id, title, genres list,
    year, description) of ml-100k (from `data`), a CSV pair folder (`data` holds interactions.csv) or a
    named variant (profile_features.datasets)."""
    if (Path(data) / "interactions.csv").exists():
        return load_csv_pair(data)
    if name == "ml-100k":
        inter, items = load_ml100k(data)
        items["description"] = ""
        return inter, items
    from profile_features.datasets.variants import load_dataset

    inter, items = load_dataset(name, data)
    inter = inter.assign(timestamp=pd.to_datetime(inter["timestamp"], utc=True).astype("int64") // 10**9)
    if "rating" not in inter.columns:
        inter["rating"] = np.nan
    items = items.assign(
        genres=[[g for g in str(v or "").split("|") if g] for v in items["genres"].fillna("")],
        year=[None if pd.isna(y) else int(y) for y in items["year"]],
        description=items["description"].fillna("") if "description" in items.columns else "",
    )
    return inter[["user_id", "item_id", "rating", "timestamp"]], items


def item_features(items: pd.DataFrame, index: ItemIndex, cache_dir: Path, seed: int = 0) -> ItemFeatures:
    """Text vectors of every catalogue item (the embedding job's text) and their semantic-ID codes."""
    catalogue = items.set_index("item_id").reindex(list(index.item_ids))
    texts = {
        item: render_item_text(
            str(row.title), "|".join(row.genres) if isinstance(row.genres, list) else None, row.year, row.description
        )
        for item, row in catalogue.iterrows()
    }
    vectors = embed_texts(texts, cache_dir, "items")
    text = np.stack([vectors[i] for i in index.item_ids])
    sid = fit_semantic_ids(
        list(text), levels=3, codes=None, encoder="all-MiniLM-L6-v2", fitted_on="catalogue", seed=seed
    )
    return ItemFeatures(text, assign_codes(list(text), sid), sid.code_sizes, "all-MiniLM-L6-v2", sid.transform_id)


def run_key(dataset: str, protocol: str, unseen_fraction: float, cfg_path: str, overrides: list[str], seed: int) -> str:
    parts = [dataset, protocol, unseen_fraction, cfg_path, overrides, seed]
    content = load_student_config(ROOT / cfg_path, [*BASE, *overrides]).items.semantic
    text = json.dumps([*parts, CODE_VERSION] if content else parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def by_slice(index: ItemIndex, slices: dict[str, SliceSet], unseen: set[str], ranks) -> dict[str, dict]:
    """Metrics per slice from `ranks(part, candidates)` (0-based target ranks; candidates None = every item),
    plus `unseen_pool`: the unseen slice ranked among the held-out items only (a serving stack's new-item pool)."""
    out = {name: metrics_from_ranks(ranks(part, None)).as_dict() for name, part in slices.items()}
    if "unseen" in slices and unseen:
        pool = np.isin(np.arange(1, len(index) + 1), index.encode(sorted(unseen)))
        out[POOL] = metrics_from_ranks(ranks(slices["unseen"], pool)).as_dict()
    return out


def _known_inputs(index: ItemIndex, part: SliceSet, max_len: int | None = None) -> tuple[list[list[int]], list[int]]:
    """Encoded inputs and targets of the slice's users whose input has an item the index knows."""
    inputs = [index.encode(items)[-max_len:] if max_len else index.encode(items) for items in part.inputs]
    keep = [k for k, seq in enumerate(inputs) if seq]
    return [inputs[k] for k in keep], index.encode([part.targets[k] for k in keep])


def slice_metrics(model, index: ItemIndex, slices: dict[str, SliceSet], unseen: set[str]) -> dict[str, dict]:
    """The trained model's full-ranking metrics per slice (and in the new-item pool)."""

    def ranks(part, candidates):
        inputs, targets = _known_inputs(index, part, model.cfg.body.max_len)
        return target_ranks(model, inputs, targets, candidates=candidates)

    return by_slice(index, slices, unseen, ranks)


def popularity_by_slice(
    counts: np.ndarray, index: ItemIndex, slices: dict[str, SliceSet], unseen: set[str]
) -> dict[str, dict]:
    """Most-popular by training counts (in the pool every item has count 0: all tie, ties counted half)."""

    def ranks(part, candidates):
        targets = np.asarray(index.encode(part.targets), dtype=np.int64)
        return ranks_from_scores(np.broadcast_to(counts, (len(targets), len(counts))), targets, candidates)

    return by_slice(index, slices, unseen, ranks)


def random_order_by_slice(index: ItemIndex, slices: dict[str, SliceSet], unseen: set[str], k: int = 10) -> dict:
    """Expected metrics of a uniformly random order over each slice's candidates (the whole catalogue;
    the held-out items for the pool)."""

    def expected(n: int) -> dict:
        ranks = np.arange(n, dtype=np.float64)
        top = ranks[:k]
        return {
            "ndcg@10": float((1 / np.log2(top + 2)).sum() / n),
            "hr@10": len(top) / n,
            "mrr": float((1 / (ranks + 1)).mean()),
        }

    out = {name: expected(len(index)) for name in slices}
    if "unseen" in slices and unseen:
        out[POOL] = expected(len(unseen & set(index.item_ids)))
    return out


def item_text_knn_by_slice(
    text: np.ndarray, index: ItemIndex, slices: dict[str, SliceSet], unseen: set[str], last: int = 3
) -> dict[str, dict]:
    """A baseline that learns nothing: score every item by the cosine of its text vector with the mean
    text vector of the input's newest `last` items (items described alike are taken alike)."""
    vectors = text - text.mean(0)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def ranks(part, candidates):
        inputs, targets = _known_inputs(index, part)
        query = np.zeros((len(inputs), vectors.shape[1]))
        for row, seq in enumerate(inputs):
            query[row] = vectors[np.asarray(seq[-last:]) - 1].mean(0)
        return ranks_from_scores(query @ vectors.T, np.asarray(targets, dtype=np.int64), candidates)

    return by_slice(index, slices, unseen, ranks)


def summarise(runs: list[dict], variants: list[str], seeds: list[int]) -> dict:
    """Per variant and slice: mean/std over seeds, paired difference with plain, lift beyond the spread."""
    by = {(r["variant"], r["seed"]): r for r in runs}
    out: dict = {}
    for variant in variants:
        mine = [by[(variant, s)] for s in seeds if (variant, s) in by]
        if not mine:
            continue
        entry = {"seeds": [r["seed"] for r in mine], "best_epochs": [r["best_epoch"] for r in mine], "slices": {}}
        names = dict.fromkeys(name for r in mine for name in r["slices"])
        for name in names:
            having = [r for r in mine if name in r["slices"]]  # runs cached before a slice existed lack it
            values = np.array([r["slices"][name]["ndcg@10"] for r in having])
            row = {
                "seeds": [r["seed"] for r in having],
                "ndcg@10": [float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0],
                "hr@10": [float(np.mean([r["slices"][name]["hr@10"] for r in having]))],
                # Where no model reaches the top 10 (items training never saw), MRR still tells who ranks higher.
                "mrr": [float(np.mean([r["slices"][name]["mrr"] for r in having]))],
                "users": having[0]["slices"][name]["users"],
            }
            for baseline in BASELINES:
                if name in having[0].get(baseline, {}):
                    row[f"{baseline}_ndcg@10"] = having[0][baseline][name]["ndcg@10"]
                    row[f"{baseline}_hr@10"] = having[0][baseline][name]["hr@10"]
                    row[f"{baseline}_mrr"] = having[0][baseline][name]["mrr"]
            plain = [by.get(("plain", r["seed"])) for r in having]
            if variant != "plain" and all(plain) and all(name in p["slices"] for p in plain):
                base = np.array([p["slices"][name]["ndcg@10"] for p in plain])
                diff = values - base
                spread = max(float(base.std(ddof=1)) if len(base) > 1 else 0.0, row["ndcg@10"][1])
                row["plain_ndcg@10"] = float(base.mean())
                row["paired_diff"] = [float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0]
                row["lift_pct"] = float(100 * (values.mean() / base.mean() - 1)) if base.mean() > 0 else None
                row["beyond_spread"] = bool(diff.mean() > spread)
            entry["slices"][name] = row
        out[variant] = entry
    return out


# post_cutoff models: overrides on configs/student.yaml (see the module docstring).
POST_CUTOFF_MODELS = {
    "shipped": [],
    "configured": ["guard.enabled=false"],
    "distilled": ["guard.enabled=false", "items.text=false", "items.sid=false"],  # the guard's without_item_content
    "plain": [
        "guard.enabled=false",
        "distill.enabled=false",
        "items.text=false",
        "items.sid=false",
        "neighbours.enabled=false",
        "train.crop_prob=0",
        "guard.prior_weights=[]",
    ],
}


def paired_interval(
    candidate: np.ndarray, baseline: np.ndarray, users: np.ndarray | None = None, z: float = 1.96, margin: float = 0.05
) -> dict:
    """Mean paired difference of [S, N] per-seed, per-observation scores, with a z-interval over users.

    Each observation's mean over seeds is one value; `users` ([N], default one user per observation) groups the
    observations one user contributes (one per cutoff they are tested at) into that user's mean, so neither seeds
    nor cutoffs count as independent users. `harm_excluded`: the lower bound is at least zero;
    `non_inferior`: at least -`margin` x the baseline's mean (the guard's non-inferiority floor)."""
    per_obs = (np.asarray(candidate) - np.asarray(baseline)).mean(0)
    groups = np.arange(len(per_obs)) if users is None else pd.factorize(np.asarray(users))[0]
    per_user = np.bincount(groups, weights=per_obs) / np.bincount(groups)
    mean = float(per_user.mean())
    se = float(per_user.std(ddof=1) / np.sqrt(len(per_user))) if len(per_user) > 1 else float("inf")
    base = float(np.mean(baseline))
    return {
        "difference": mean,
        "interval": [mean - z * se, mean + z * se],
        "lift_pct": 100 * mean / base if base > 0 else None,
        "users": len(per_user),
        "harm_excluded": bool(mean - z * se >= 0),
        "non_inferior": bool(mean - z * se >= -margin * base),
        "beyond_noise": "better" if mean - z * se > 0 else "worse" if mean + z * se < 0 else "within",
    }


class CutoffFold(NamedTuple):
    """One deployment simulation: train before the `quantile` cutoff, test on each user's first items after it."""

    quantile: float
    users: list[str]  # test users: a history before the cutoff and an item after it
    cold: np.ndarray  # [U] at most 5 interactions before the cutoff (evaluate's cold slice)
    owner: np.ndarray  # [T] target -> its user's position
    inputs: list[list[int]]  # [T] encoded history before the cutoff
    wanted: np.ndarray  # [T] encoded target
    popular: np.ndarray  # [U] most-popular's per-user NDCG@10 (counts before the cutoff)
    data: object  # the TrainingData every model of this fold trains on
    interactions_before: int


def post_cutoff_fold(
    inter: pd.DataFrame, items: pd.DataFrame, index: ItemIndex, quantile: float, args: argparse.Namespace
) -> CutoffFold:
    from profile_features.student.data import user_timelines
    from profile_features.student.guard import per_user_ndcg

    cache_dir = Path(args.cache_dir)
    cutoff = inter["timestamp"].quantile(quantile)
    before = inter[inter["timestamp"] < cutoff]
    after = inter[inter["timestamp"] >= cutoff].sort_values("timestamp", kind="stable")
    timelines = user_timelines(before)
    history = {u: s for u, (s, _) in timelines.items()}
    targets = after.groupby("user_id")["item_id"].agg(lambda s: list(s.iloc[: args.targets_per_user]))
    users = sorted(set(targets.index) & set(history))
    ratings = {(u, i): float(r) for u, i, r in zip(before["user_id"], before["item_id"], before["rating"])}
    texts = build_profile_texts(history, ratings, items, profile_writer(args.profile_config, args.profile_set))
    profiles = embed_texts({u: t for u, t in texts.items() if t}, cache_dir)
    features = item_features(items, index, cache_dir)
    data = build_training_data(history, index, profiles, features, {u: when for u, (_, when) in timelines.items()})
    counts = np.zeros(len(index))
    for seq in data.sequences:
        np.add.at(counts, np.asarray(seq, dtype=np.int64) - 1, 1.0)
    # One (history, target) pair per target; `owner` maps each pair back to its user.
    owner = np.repeat(np.arange(len(users)), [len(targets[u]) for u in users])
    wanted = np.asarray(index.encode([t for u in users for t in targets[u]]), dtype=np.int64)
    popular = per_user_ndcg(
        ranks_from_scores(np.broadcast_to(counts, (len(wanted), len(counts))), wanted), owner, len(users)
    )
    return CutoffFold(
        quantile=quantile,
        users=users,
        cold=np.array([len(history[u]) <= 5 for u in users]),
        owner=owner,
        inputs=[index.encode(history[users[o]]) for o in owner],
        wanted=wanted,
        popular=popular,
        data=data,
        interactions_before=len(before),
    )


def run_post_cutoff(args: argparse.Namespace) -> int:
    """The deployment protocol (module docstring): train before a global cutoff, test on the first items after;
    with several `--cutoffs`, once per cutoff (rolling origin), the differences pooled per user."""
    from profile_features.student.guard import guarded_fit, per_user_ndcg
    from profile_features.student.sources import Cached

    cache_dir = Path(args.cache_dir)
    inter, items = load_benchmark_dataset(args.dataset, args.data)
    index = ItemIndex.from_items([*items["item_id"], *inter["item_id"]])
    folds = [post_cutoff_fold(inter, items, index, q, args) for q in args.cutoffs]
    for fold in folds:
        print(
            f"{args.dataset}: cutoff at the {fold.quantile} quantile: {len(inter)} interactions, "
            f"{fold.interactions_before} before it, {len(fold.users)} test users, "
            f"most popular NDCG@10 {fold.popular.mean():.4f}",
            file=sys.stderr,
        )
    runs_file = cache_dir / f"runs-{args.dataset}-post_cutoff.jsonl"
    cached = {}
    if runs_file.exists():
        cached = {row["key"]: row for row in map(json.loads, runs_file.read_text().splitlines())}
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    # model -> [S, N] per-seed scores of every (cutoff, user) observation, folds side by side
    scores: dict[str, list[np.ndarray]] = {}
    runs = []
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(POST_CUTOFF_MODELS))
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; known: {', '.join(POST_CUTOFF_MODELS)}")
    for model in models:
        for seed in args.seeds:
            per_fold = []
            for fold in folds:
                overrides = [*POST_CUTOFF_MODELS[model], *args.overrides, f"train.seed={seed}"]
                key = [
                    args.dataset,
                    "post_cutoff",
                    model,
                    overrides,
                    CODE_VERSION,
                    args.targets_per_user,
                    fold.quantile,
                ]
                key = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
                if key not in cached:
                    if args.summarise_only:
                        break
                    cfg = load_student_config(ROOT / "configs/student.yaml", overrides)
                    started = time.perf_counter()
                    result, decision = guarded_fit(cfg, Cached(fold.data, cfg.guard.cache_interactions), log=log)
                    ranks = target_ranks(result.model, fold.inputs, list(fold.wanted))
                    row = {
                        "key": key,
                        "model": model,
                        "seed": seed,
                        "cutoff_quantile": fold.quantile,
                        "overrides": overrides,
                        "shipped": decision.variant,
                        "guard": decision.as_dict(),
                        "seconds": round(time.perf_counter() - started, 1),
                        "per_user_ndcg@10": per_user_ndcg(ranks, fold.owner, len(fold.users)).round(6).tolist(),
                    }
                    cached[key] = row
                    runs_file.parent.mkdir(parents=True, exist_ok=True)
                    with runs_file.open("a") as out:
                        out.write(json.dumps(row) + "\n")
                row = cached[key]
                per_fold.append(np.asarray(row["per_user_ndcg@10"]))
                runs.append(
                    {k: v for k, v in row.items() if k != "per_user_ndcg@10"}
                    | {"cutoff_quantile": fold.quantile, "ndcg@10": float(np.mean(row["per_user_ndcg@10"]))}
                )
                print(
                    f"{model} seed {seed} cutoff {fold.quantile}: shipped {row['shipped']}, "
                    f"test NDCG@10 {runs[-1]['ndcg@10']:.4f} ({row['seconds']}s)",
                    flush=True,
                )
            if len(per_fold) == len(folds):  # a seed counts only with every cutoff run
                scores.setdefault(model, []).append(np.concatenate(per_fold))
    # Evaluate's slices: all test users, and the cold ones (at most 5 interactions before the cutoff).
    owners = np.array([u for fold in folds for u in fold.users], dtype=object)
    popular = np.concatenate([fold.popular for fold in folds])
    slices = {"all": np.ones(len(owners), bool), "cold": np.concatenate([fold.cold for fold in folds])}
    summary = {}
    for model, per_seed in scores.items():
        entry = {
            "seeds": len(per_seed),
            "shipped": [r["shipped"] for r in runs if r["model"] == model],
            "seconds": [r["seconds"] for r in runs if r["model"] == model],
        }
        for slice_name, mask in slices.items():
            matrix = np.stack(per_seed)[:, mask]
            row = {
                "users": len(set(owners[mask])),
                "observations": int(mask.sum()),
                "ndcg@10": [float(matrix.mean()), float(matrix.mean(1).std(ddof=1)) if len(per_seed) > 1 else 0.0],
                "vs_most_popular": paired_interval(matrix, np.broadcast_to(popular[mask], matrix.shape), owners[mask]),
            }
            if model != "plain" and "plain" in scores and len(scores["plain"]) == len(per_seed):
                row["vs_plain"] = paired_interval(matrix, np.stack(scores["plain"])[:, mask], owners[mask])
            entry |= row if slice_name == "all" else {}
            entry.setdefault("slices", {})[slice_name] = row
        summary[model] = entry
    print(
        f"\n{args.dataset}, post_cutoff at {args.cutoffs}, seeds {args.seeds}, {len(set(owners))} test users, "
        f"{len(owners)} (cutoff, user) observations ({slices['cold'].sum()} cold)"
    )
    print("| model | shipped | slice | NDCG@10 | vs plain | vs most popular | seconds |")
    print("|---|---|---|---|---|---|---|")
    for model, entry in summary.items():
        for slice_name, row in entry["slices"].items():
            cells = []
            for name in ("vs_plain", "vs_most_popular"):
                c = row.get(name)
                cells.append(
                    "" if c is None else f"{c['difference']:+.4f} [{c['interval'][0]:+.4f}, {c['interval'][1]:+.4f}]"
                )
            print(
                f"| {model} | {', '.join(entry['shipped'])} | {slice_name} | {row['ndcg@10'][0]:.4f} +/- "
                f"{row['ndcg@10'][1]:.4f} | {cells[0]} | {cells[1]} | {np.mean(entry['seconds']):.0f} |"
            )
    for slice_name, mask in slices.items():
        print(f"| most popular | | {slice_name} | {popular[mask].mean():.4f} | | | |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "protocol": "post_cutoff",
                    "cutoff_quantiles": args.cutoffs,
                    "seeds": args.seeds,
                    "overrides": args.overrides,
                    "test_users": len(set(owners)),
                    "observations": len(owners),
                    "targets_per_user": args.targets_per_user,
                    "most_popular_ndcg@10": float(popular.mean()),
                    "most_popular_cold_ndcg@10": float(popular[slices["cold"]].mean()),
                    "summary": summary,
                    "runs": runs,
                },
                indent=1,
            )
        )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/datasets/ml-100k"))
    ap.add_argument("--dataset", default="ml-100k", help="ml-100k | ml-100k-sparse | sample-noisy | sample")
    ap.add_argument("--variants", default="plain,text_pca_distill", help="names in VARIANTS, comma-separated")
    ap.add_argument(
        "--custom",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDES"),
        help="extra variant on configs/student.yaml: NAME 'k=v k=v'",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--protocol", choices=["loo", "temporal", "post_cutoff"], default="loo")
    ap.add_argument(
        "--models",
        default=",".join(POST_CUTOFF_MODELS),
        help=f"post_cutoff: which of {', '.join(POST_CUTOFF_MODELS)} to train (comma-separated)",
    )
    ap.add_argument(
        "--cutoffs",
        type=float,
        nargs="+",
        default=[0.8],
        help="post_cutoff: cutoff quantiles of time, one deployment simulation each (rolling origin)",
    )
    ap.add_argument(
        "--targets-per-user", type=int, default=5, help="post_cutoff: each test user's first items after the cutoff"
    )
    ap.add_argument("--unseen-fraction", type=float, default=0.05, help="items removed from training (loo)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="override for every variant")
    ap.add_argument("--cache-dir", default="/tmp/student_benchmark_cache")
    ap.add_argument(
        "--profile-config",
        default=None,
        help="job config whose profile: section writes the profiles (default: the rule-based writer)",
    )
    ap.add_argument("--profile-set", action="append", default=[], help="override for --profile-config")
    ap.add_argument("--out", default=None, help="write the summary (and every run) as JSON")
    ap.add_argument("--summarise-only", action="store_true", help="train nothing; summarise the cached runs")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    unknown = [name for name in args.variants.split(",") if name and name not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.protocol == "post_cutoff":
        return run_post_cutoff(args)
    cache_dir = Path(args.cache_dir)
    inter, items = load_benchmark_dataset(args.dataset, args.data)
    ratings = {(u, i): float(r) for u, i, r in zip(inter["user_id"], inter["item_id"], inter["rating"])}
    item_index = ItemIndex.from_items(items["item_id"])
    unseen: set[str] = set()
    if args.protocol == "loo":
        sequences = user_sequences(inter)
        split = leave_last_out(sequences)
        unseen = hold_out_items(inter["item_id"], args.unseen_fraction, seed=0)
        # Users too short to evaluate still train on all they have.
        short_users = {u: s for u, s in sequences.items() if u not in split.train}
        train_hist = without_items({**split.train, **short_users}, unseen)
        users = sorted(u for u in split.test_target if u in train_hist)
        vusers = [u for u in users if split.valid_target[u] not in unseen]
        valid = (
            [item_index.encode(train_hist[u]) for u in vusers],
            item_index.encode([split.valid_target[u] for u in vusers]),
        )
        test_inputs = {u: train_hist[u] + ([split.valid_target[u]] if u in vusers else []) for u in users}
        slices = evaluation_slices(test_inputs, {u: split.test_target[u] for u in users}, train_hist, unseen)
    else:
        tsplit = temporal_split(inter, 0.8)
        train_hist = {u: s for u, s in tsplit.train.items() if len(s) >= 3}
        vusers = sorted(train_hist)
        valid = (
            [item_index.encode(train_hist[u][:-1]) for u in vusers],
            item_index.encode([train_hist[u][-1] for u in vusers]),
        )
        tusers = sorted(tsplit.test_target)
        slices = {
            "all": SliceSet(tusers, [tsplit.test_input[u] for u in tusers], [tsplit.test_target[u] for u in tusers])
        }
        train_hist = {u: s[:-1] for u, s in train_hist.items()}
    generator = profile_writer(args.profile_config, args.profile_set)
    writer_name = f"{generator.name}/{generator.model}/{generator.prompt_version}"

    variants = {name: VARIANTS[name] for name in args.variants.split(",") if name}
    for name, overrides in args.custom:
        variants[name] = ("configs/student.yaml", [f"name={name}", *overrides.split()])
    runs_file = cache_dir / f"runs-{args.dataset}-{args.protocol}.jsonl"
    cached = {}
    if runs_file.exists():
        for line in runs_file.read_text().splitlines():
            row = json.loads(line)
            cached[row["key"]] = row
    todo = [
        (name, cfg_path, var_overrides, seed)
        for name, (cfg_path, var_overrides) in variants.items()
        for seed in args.seeds
        if run_key(args.dataset, args.protocol, args.unseen_fraction, cfg_path, [*var_overrides, *args.overrides], seed)
        not in cached
    ]
    if todo and not args.summarise_only:
        text_cache = None
        if args.profile_config:  # LLM runs take hours: resumable, keyed by generator and prompt version
            slug = hashlib.sha256(writer_name.encode()).hexdigest()[:12]
            text_cache = cache_dir / f"profile-texts-{args.dataset}-{args.protocol}-{slug}.jsonl"
        t0 = time.perf_counter()
        texts = build_profile_texts(train_hist, ratings, items, generator, text_cache)
        profiles = embed_texts(texts, cache_dir)
        mat = np.stack([profiles[u] for u in sorted(profiles)])
        print(
            f"profiles: {len(profiles)} by {writer_name}, dim {mat.shape[1]}, mean pairwise cosine "
            f"{mean_pairwise_cosine(mat):.3f} ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
        )
        features = item_features(items, item_index, cache_dir)
        data = build_training_data(train_hist, item_index, profiles, features)
        counts = np.zeros(len(item_index))
        for seq in data.sequences:
            np.add.at(counts, np.asarray(seq, dtype=np.int64) - 1, 1.0)
        popular = popularity_by_slice(counts, item_index, slices, unseen)
        text_knn = item_text_knn_by_slice(features.text, item_index, slices, unseen)
        random_order = random_order_by_slice(item_index, slices, unseen)
        for name, cfg_path, var_overrides, seed in todo:
            overrides = [*var_overrides, *args.overrides]
            # Same budget for every variant: all epochs, best validation epoch kept.
            cfg = load_student_config(ROOT / cfg_path, [*BASE, "train.patience=null", *overrides, f"train.seed={seed}"])
            log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
            res = fit(cfg, data, valid, log=log)
            row = {
                "key": run_key(args.dataset, args.protocol, args.unseen_fraction, cfg_path, overrides, seed),
                "variant": name,
                "config": cfg_path,
                "overrides": overrides,
                "seed": seed,
                "best_epoch": res.best_epoch,
                "seconds": round(res.seconds, 1),
                "slices": slice_metrics(res.model, item_index, slices, unseen),
                "most_popular": popular,
                "item_text_knn": text_knn,
                "random_order": random_order,
            }
            cached[row["key"]] = row
            runs_file.parent.mkdir(parents=True, exist_ok=True)
            with runs_file.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(
                f"{name} seed {seed}: "
                + " ".join(f"{k} {v['ndcg@10']:.4f}" for k, v in row["slices"].items())
                + f" (best epoch {res.best_epoch}, {res.seconds:.0f}s)",
                flush=True,
            )
    wanted = {
        run_key(args.dataset, args.protocol, args.unseen_fraction, cfg_path, [*o, *args.overrides], seed): name
        for name, (cfg_path, o) in variants.items()
        for seed in args.seeds
    }
    runs = [{**cached[k], "variant": name} for k, name in wanted.items() if k in cached]
    summary = summarise(runs, list(variants), args.seeds)
    users = {name: len(part.users) for name, part in slices.items()}
    columns = list(dict.fromkeys(name for entry in summary.values() for name in entry["slices"]))
    print(f"\n{args.dataset}, protocol {args.protocol}, seeds {args.seeds}, items {len(item_index)}, users {users}")
    print("| variant | " + " | ".join(f"{s} NDCG@10" for s in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, entry in summary.items():
        cells = []
        for s in columns:
            row = entry["slices"].get(s)
            if row is None:
                cells.append("")
                continue
            mean, std = row["ndcg@10"]
            lift = (
                f" ({row['lift_pct']:+.1f}%{'*' if row.get('beyond_spread') else ''})"
                if row.get("lift_pct") is not None
                else ""
            )
            seeds = f" [{len(row['seeds'])} seeds]" if len(row["seeds"]) != len(entry["seeds"]) else ""
            cells.append(f"{mean:.4f} +/- {std:.4f}{lift}{seeds}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for baseline in BASELINES:
        having = [r for r in runs if baseline in r]
        if having:
            cells = [f"{having[-1][baseline][s]['ndcg@10']:.4f}" if s in having[-1][baseline] else "" for s in columns]
            print(f"| {baseline.replace('_', ' ')} | " + " | ".join(cells) + " |")
    print("(* = mean paired difference with plain larger than the seed spread)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "protocol": args.protocol,
                    "seeds": args.seeds,
                    "unseen_fraction": args.unseen_fraction,
                    "overrides": args.overrides,
                    "profile_writer": writer_name,
                    "slice_users": users,
                    "summary": summary,
                    "runs": runs,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
