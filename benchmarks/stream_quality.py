"""Quality of the streaming student refresh: NDCG@10 of the next item with the streamed embedding against the
stale batch embedding, for users whose events arrived after the last batch run.

    .venv/bin/python benchmarks/stream_quality.py [--datasets ml-100k sample] \
        [--cutoff-quantile 0.8] [--window-quantile 0.9] [--out benchmarks/results/stream_quality.json]

Protocol, per dataset (ml-100k from ../shared/datasets/ml-100k, the generated sample):
- batch cutoff C = the `--cutoff-quantile` of interaction times, stream window end W = the `--window-quantile`,
  both floored to a day (`pipeline.snapshot_cutoffs`);
- the real pipeline (`run_pipeline`, shipped defaults: rule-based profiles, configs of `JobConfig()`, the
  student through its deployment guard) builds one snapshot at C in a temporary data_dir, `local[2]`;
- streamed events: every event in [C, W) (the stream applies events with timestamp >= the snapshot's cutoff;
  the snapshot's histories hold those strictly before it);
- evaluated users: >= 1 streamed event, >= 1 event at or after W, and a HISTORIES row at C (known users);
  target: the user's first item at or after W (evaluation.student_quality's `next_items`);
- stale input: the snapshot's HISTORIES `item_ids`; fresh input: those followed by the streamed events in
  time order, deduplicated on (user, item, timestamp), the last `history.max_length` kept
  (streaming.histories.touched_histories, which tests/integration/test_stream.py scores with `score_users`);
- both ranked over the whole catalogue by the snapshot's checkpoint, seen items not removed
  (evaluation.student_quality's `_ranks`; most popular: counts before W, its `_popular_ranks`);
  NDCG@10 per user (`ranks_per_user`), paired differences with a 95% normal interval over users
  (evaluation.statistics.paired_difference, one checkpoint so one seed);
- slices by the number of streamed events in the window (1-2, 3-9, 10+); new users (no history at C) are
  counted and, with their streamed events as the whole input, scored fresh against most popular.
As a check that the ranking is the online value's, the fresh ranks are recomputed from `score_users`'
`student_embedding` . `score_items`' vector + bias and the largest rank difference is reported.

Writes (merging with datasets already there) benchmarks/results/stream_quality.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from profile_features.catalogue import (  # noqa: E402
    HISTORIES,
    STUDENT,
    USER_PROFILE_EMBEDDINGS,
    USER_STUDENT,
    Snapshot,
)
from profile_features.config import JobConfig, SparkConfig  # noqa: E402
from profile_features.datasets.variants import load_dataset  # noqa: E402
from profile_features.evaluation.statistics import paired_difference  # noqa: E402
from profile_features.evaluation.student_quality import (  # noqa: E402
    MOST_POPULAR,
    _popular_ranks,
    _ranks,
    _read,
    next_items,
    ranks_per_user,
)
from profile_features.pipeline import run_pipeline, snapshot_cutoffs, write_inputs  # noqa: E402

STALE, FRESH = "stale (batch)", "fresh (streamed)"
SLICES = {"1-2": (1, 2), "3-9": (3, 9), "10+": (10, None)}
ML100K = ROOT.parent / "shared/datasets/ml-100k"


def streamed_histories(
    base: pd.DataFrame, interactions: pd.DataFrame, cutoff, end, max_length: int
) -> tuple[pd.DataFrame, pd.Series]:
    """(user_id, item_ids) of every user with an event in [cutoff, end): the snapshot's history (none for a new
    user), then those events by (timestamp, item_id), deduplicated, the newest `max_length` kept; and the
    number of streamed events per user."""
    window = interactions[
        (interactions.timestamp >= pd.Timestamp(cutoff)) & (interactions.timestamp < pd.Timestamp(end))
    ][["user_id", "item_id", "timestamp"]].astype({"user_id": str, "item_id": str})
    window = window.drop_duplicates(["user_id", "item_id", "timestamp"]).sort_values(
        ["user_id", "timestamp", "item_id"], kind="stable"
    )
    events = window.groupby("user_id").item_id.agg(list)
    known = dict(zip(base.user_id, base.item_ids))
    rows = [(user, (list(known.get(user, [])) + items)[-max_length:]) for user, items in events.items()]
    return pd.DataFrame(rows, columns=["user_id", "item_ids"]), events.map(len)


def aligned(have: np.ndarray, ranks: np.ndarray, users: np.ndarray) -> np.ndarray:
    """`ranks` (one per user of `have`) in the order of `users` (a subset of `have`)."""
    order = np.argsort(have)
    return ranks[order][np.searchsorted(have[order], users)]


def online_ranks(student, histories: pd.DataFrame, targets: pd.Series) -> np.ndarray:
    """Target ranks from the served features: `score_users`' embedding . `score_items`' vector + bias."""
    from profile_features.student.evaluation import ranks_from_scores
    from profile_features.student.scoring import score_items, score_users

    users = score_users(histories, student)
    items = score_items(pd.DataFrame({"item_id": student.item_index.item_ids}), student)
    scores = np.stack(users.student_embedding.to_numpy()) @ np.stack(items.student_item_embedding.to_numpy()).T
    scores = scores + items.student_item_bias.to_numpy()[None, :]
    index = student.item_index.to_index
    return ranks_from_scores(scores, np.array([index[str(targets[u][0])] for u in histories.user_id]))


def summary(diff) -> dict | None:
    if diff is None:
        return None
    return {
        "users": diff.users,
        "mean": round(diff.mean, 4),
        "baseline_mean": round(diff.baseline_mean, 4),
        "difference": round(diff.difference, 4),
        "interval": [round(diff.low, 4), round(diff.high, 4)],
        "lift_pct": round(100 * diff.lift, 1) if np.isfinite(diff.lift) else None,
        "outcome": diff.outcome,
    }


def evaluate(name: str, args: argparse.Namespace, spark, workdir: Path) -> dict:
    from profile_features.student.scoring import load_student

    interactions, items = load_dataset(name, args.ml100k)
    cutoff, end = snapshot_cutoffs(interactions.timestamp, [args.cutoff_quantile, args.window_quantile])
    config = JobConfig(
        data_dir=str(workdir / name / "data"),
        inputs=write_inputs(interactions, items, workdir / name / "raw"),
        spark=SparkConfig(master="local[2]", log_level="ERROR"),
    )
    started = time.perf_counter()
    pipeline = run_pipeline(spark, config, [cutoff])
    pipeline_seconds = time.perf_counter() - started
    snapshot = Snapshot(config.data_dir, cutoff)
    student = load_student(snapshot.path(STUDENT))
    base = _read(snapshot, HISTORIES, ["user_id", "item_ids"])
    base = base.assign(item_ids=[list(v) for v in base.item_ids])
    targets = next_items(interactions, end, interactions.timestamp.max() + pd.Timedelta(seconds=1))
    fresh, streamed = streamed_histories(base, interactions, cutoff, end, config.history.max_length)
    fresh = fresh[fresh.user_id.isin(targets.index)].reset_index(drop=True)
    is_known = fresh.user_id.isin(set(base.user_id))
    new, fresh = fresh[~is_known].reset_index(drop=True), fresh[is_known].reset_index(drop=True)
    stale = base.set_index("user_id").loc[fresh.user_id].reset_index()

    stale_users, stale_ranks = _ranks(student, stale, targets)
    fresh_users, fresh_ranks = _ranks(student, fresh, targets)
    users = np.intersect1d(stale_users, fresh_users)
    stale_ranks, fresh_ranks = aligned(stale_users, stale_ranks, users), aligned(fresh_users, fresh_ranks, users)
    popular = _popular_ranks(student, interactions, end, users, targets)
    per_user = ranks_per_user(users, {STALE: [stale_ranks], FRESH: [fresh_ranks], MOST_POPULAR: [popular]})
    kept = fresh.set_index("user_id").loc[users].reset_index()
    online = online_ranks(student, kept, targets)

    slices = {}
    counts = streamed.reindex(users).to_numpy()
    popular_ndcg = per_user[per_user.variant == MOST_POPULAR].set_index("user_id").value
    for label, (low, high) in SLICES.items():
        members = users[(counts >= low) & (counts <= (high or np.inf))]
        slices[label] = {
            "fresh_vs_stale": summary(paired_difference(per_user, FRESH, STALE, members)),
            "most_popular_ndcg@10": round(float(popular_ndcg[members].mean()), 4) if len(members) else None,
        }
    new_result = {"users": int(len(new))}
    if len(new):
        new_users, new_ranks = _ranks(student, new, targets)
        if len(new_users):
            new_popular = _popular_ranks(student, interactions, end, new_users, targets)
            new_frame = ranks_per_user(new_users, {FRESH: [new_ranks], MOST_POPULAR: [new_popular]})
            new_result |= {
                "scored": int(len(new_users)),
                "fresh_vs_most_popular": summary(paired_difference(new_frame, FRESH, MOST_POPULAR)),
            }
    mean = per_user.groupby("variant").value.mean()
    drift = drift_report(snapshot, student, kept, stale, users, per_user)
    return {
        "cutoff": cutoff.isoformat(),
        "window_end": end.isoformat(),
        "quantiles": [args.cutoff_quantile, args.window_quantile],
        "interactions": int(len(interactions)),
        "catalogue_items": int(len(student.item_index.item_ids)),
        "checkpoint_variant": student.variant,
        "pipeline_seconds": round(pipeline_seconds, 1),
        "interactions_rejected_by_validation": pipeline["validate"]["tables"]["interactions"]["rejected"],
        "candidates": int(len(fresh)),
        "users": int(len(users)),
        "users_dropped_unknown_target": int(len(fresh) - len(users)),
        "streamed_events_per_user": {
            "median": float(streamed.reindex(users).median()),
            "max": int(streamed.reindex(users).max()),
        },
        "ndcg@10": {variant: round(float(mean[variant]), 4) for variant in (STALE, FRESH, MOST_POPULAR)},
        "fresh_vs_stale": summary(paired_difference(per_user, FRESH, STALE)),
        "fresh_vs_most_popular": summary(paired_difference(per_user, FRESH, MOST_POPULAR)),
        "stale_vs_most_popular": summary(paired_difference(per_user, STALE, MOST_POPULAR)),
        "by_streamed_events": slices,
        "new_users": new_result,
        "online_path_max_rank_difference": float(np.abs(online - fresh_ranks).max()) if len(users) else None,
        "drift": drift,
    }


def drift_report(snapshot: Snapshot, student, fresh: pd.DataFrame, stale: pd.DataFrame, users, per_user) -> dict:
    """Which streamed users the refresh queue would take: the stream's default threshold (the 0.99 quantile of
    the snapshot's batch drifts) against the fixed 0.5 it replaced, and whether the queued users are the ones whose
    batch (stale) state served them worst (fresh - stale NDCG@10 over queued and not queued users)."""
    from profile_features.student.scoring import score_users

    profiles = _read(snapshot, USER_PROFILE_EMBEDDINGS, ["user_id", "profile_embedding"])
    batch = _read(snapshot, USER_STUDENT, ["profile_drift"]).profile_drift.dropna().to_numpy()
    if not len(batch):
        return {"snapshot_users_with_drift": 0}
    threshold = float(np.quantile(batch, 0.99))

    def drifts(histories: pd.DataFrame) -> pd.Series:
        frame = histories.set_index("user_id").loc[users].reset_index().merge(profiles, on="user_id", how="left")
        return pd.Series(score_users(frame, student).profile_drift.to_numpy(), index=frame.user_id)

    fresh_drift, stale_drift = drifts(fresh), drifts(stale)
    quantiles = lambda x: {q: round(float(np.nanquantile(x, q)), 4) for q in (0.5, 0.9, 0.99)}  # noqa: E731
    queued = fresh_drift.index[fresh_drift > threshold].to_numpy()
    rest = fresh_drift.index[~(fresh_drift > threshold)].to_numpy()
    return {
        "snapshot_drift_quantiles": quantiles(batch),
        "default_threshold": round(threshold, 4),
        "stale_drift_quantiles": quantiles(stale_drift),
        "fresh_drift_quantiles": quantiles(fresh_drift),
        "queued_share_at_default": round(float((fresh_drift > threshold).mean()), 4),
        "queued_share_at_0.5": round(float((fresh_drift > 0.5).mean()), 4),
        "fresh_minus_stale_drift_mean": round(float((fresh_drift - stale_drift).mean()), 4),
        "fresh_vs_stale_queued": summary(paired_difference(per_user, FRESH, STALE, queued)) if len(queued) else None,
        "fresh_vs_stale_not_queued": summary(paired_difference(per_user, FRESH, STALE, rest)) if len(rest) else None,
    }


def print_table(results: dict) -> None:
    print("| dataset | users | stale NDCG@10 | fresh NDCG@10 | fresh - stale [95% CI] | lift | most popular |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        d = r["fresh_vs_stale"]
        print(
            f"| {name} | {r['users']} | {r['ndcg@10'][STALE]:.4f} | {r['ndcg@10'][FRESH]:.4f} | "
            f"{d['difference']:+.4f} [{d['interval'][0]:+.4f}, {d['interval'][1]:+.4f}] | {d['lift_pct']:+.1f}% | "
            f"{r['ndcg@10'][MOST_POPULAR]:.4f} |"
        )
    for name, r in results.items():
        for label, s in r["by_streamed_events"].items():
            d = s["fresh_vs_stale"]
            if d is not None:
                print(
                    f"  {name}, {label} streamed events: {d['users']} users, stale {d['baseline_mean']:.4f}, "
                    f"fresh {d['mean']:.4f}, {d['difference']:+.4f} [{d['interval'][0]:+.4f}, {d['interval'][1]:+.4f}]"
                )
        print(f"  {name}: new users {r['new_users']}")
        print(f"  {name}: drift {json.dumps(r.get('drift'))}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["ml-100k", "sample"], choices=["ml-100k", "sample"])
    ap.add_argument("--ml100k", type=Path, default=ML100K, help="MovieLens ml-100k folder")
    ap.add_argument("--cutoff-quantile", type=float, default=0.8, help="batch snapshot cutoff C")
    ap.add_argument("--window-quantile", type=float, default=0.9, help="end W of the streamed window [C, W)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/stream_quality.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from profile_features.spark.session import build_spark

    spark = build_spark(SparkConfig(master="local[2]", log_level="ERROR"))
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = previous.get("datasets", {})
    with tempfile.TemporaryDirectory(prefix="stream_quality-") as tmp:
        for name in args.datasets:
            results[name] = evaluate(name, args, spark, Path(tmp))
            results[name]["command"] = "python benchmarks/stream_quality.py " + " ".join(
                sys.argv[1:] if argv is None else argv
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"benchmark": "stream_quality", "datasets": results}, indent=1) + "\n")
    spark.stop()
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
