"""Training that streams users from Parquet: the same statistics, validation and model as in memory,
never more than one chunk of users at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from profile_features.student.data import user_sequences
from profile_features.student.heads import DistillHead, ProfileMoments, ProfileTargetTransform, readout_moments
from profile_features.student.sources import HeldOutLast, ParquetUsers
from profile_features.student.train import train_from_frames, train_from_parquet
from profile_features.student.training import build_training_data, source_stats


def _users_table(seqs: dict[str, list[str]], profiles: dict[str, np.ndarray], without: set[str] = frozenset()):
    """As the Spark job writes it; the times are cyclic_interactions' (1000, 1001, ... per user)."""
    users = sorted(seqs)
    return pa.table(
        {
            "user_id": users,
            "item_ids": [seqs[u] for u in users],
            "item_times": [list(range(1000, 1000 + len(seqs[u]))) for u in users],
            "profile_embedding": [None if u in without else profiles[u].tolist() for u in users],
        }
    )


def _write_parts(table: pa.Table, folder, parts: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(1).permutation(table.num_rows)  # parts hold users in no particular order
    for i, rows in enumerate(np.array_split(order, parts)):
        pq.write_table(table.take(rows), folder / f"part-{i:05d}.parquet")


class _Counting:
    """A source wrapper that records the largest chunk it handed out."""

    def __init__(self, source):
        self.source, self.item_index, self.largest = source, source.item_index, 0

    @property
    def profile_dim(self):
        return self.source.profile_dim

    def chunks(self, rng=None):
        for chunk in self.source.chunks(rng):
            self.largest = max(self.largest, len(chunk.users))
            yield chunk


def test_streamed_chunks_give_the_in_memory_statistics_and_validation(cyclic_data, tmp_path):
    _, seqs, index, profiles = cyclic_data
    without = {"u3", "u7"}  # users without a profile stay in training, out of the profile moments
    _write_parts(_users_table(seqs, profiles, without), tmp_path / "users", parts=5)
    streamed = _Counting(ParquetUsers(str(tmp_path / "users"), index, profile_dim=8, batch_rows=4))
    memory = build_training_data(seqs, index, {u: v for u, v in profiles.items() if u not in without})

    a, b = source_stats(streamed), source_stats(memory)
    assert streamed.largest == 4  # never more than batch_rows users at once
    np.testing.assert_array_equal(a.counts, b.counts)
    assert (a.users, a.interactions, a.trainable_users) == (b.users, b.interactions, len(seqs))
    assert a.users_with_profile == b.users_with_profile == len(seqs) - 2
    np.testing.assert_allclose(a.profiles.mean, b.profiles.mean, atol=1e-9)
    np.testing.assert_allclose(a.profiles.scatter, b.profiles.scatter, atol=1e-7)

    inputs, targets = HeldOutLast(streamed).validation()
    held = {(tuple(i), t) for i, t in zip(inputs, targets)}
    assert held == {(tuple(index.encode(s[:-1])), index.encode([s[-1]])[0]) for s in seqs.values()}
    trained_on = {u: s for c in HeldOutLast(streamed).chunks() for u, s in zip(c.users, c.sequences)}
    assert trained_on == {u: index.encode(s[:-1]) for u, s in seqs.items()}  # the held-out item is not trained on

    sample = HeldOutLast(streamed, limit=10, seed=3).validation()
    assert len(sample[0]) == 10 and {(tuple(i), t) for i, t in zip(*sample)} <= held  # a bounded, uniform sample


def test_moments_and_ridge_sums_over_chunks_equal_the_whole(make_config):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(103, 6)) * [1, 2, 3, 4, 5, 6] + 10
    merged = ProfileMoments(6)
    for part in np.array_split(x, 7):
        merged.add(part)
    np.testing.assert_allclose(merged.mean, x.mean(0))
    np.testing.assert_allclose(merged.scatter / (len(x) - 1), np.cov(x.T), rtol=1e-10)
    whole = ProfileTargetTransform(6, "whiten").fit(x)
    chunked = ProfileTargetTransform(6, "whiten").fit_moments(merged)
    torch.testing.assert_close(chunked.proj.abs(), whole.proj.abs())  # eigenvectors up to sign

    pooled, target = torch.randn(50, 5), torch.randn(50, 3)
    distill = make_config().distill
    whole_head, chunked_head = DistillHead(5, 3, distill), DistillHead(5, 3, distill)
    whole_head.fit_readout(pooled, target, 1.0)
    sums = [readout_moments(pooled[i : i + 9], target[i : i + 9]) for i in range(0, 50, 9)]
    chunked_head.fit_readout_moments(sum(s[0] for s in sums), sum(s[1] for s in sums), 1.0)
    torch.testing.assert_close(chunked_head.readout.weight, whole_head.readout.weight)


def test_parquet_training_in_one_chunk_is_the_in_memory_training(cyclic_data, make_config, tmp_path):
    interactions, seqs, index, profiles = cyclic_data
    pq.write_table(_users_table(seqs, profiles), tmp_path / "users.parquet")  # one file, users sorted
    frames = pd.DataFrame({"user_id": list(profiles), "profile_embedding": list(profiles.values())})
    cfg = make_config("train.epochs=6", "train.eval_every=2")
    memory = train_from_frames(cfg, interactions, frames, tmp_path / "memory", validate=True)
    streamed = train_from_parquet(
        cfg, str(tmp_path / "users.parquet"), interactions.item_id, 8, tmp_path / "streamed", validate=True
    )
    for key in ("variant", "best_epoch", "epochs_run", "best_valid", "popularity_valid", "users", "users_with_profile"):
        assert streamed[key] == memory[key], key
    untimed = [
        [{k: v for k, v in c.items() if k != "seconds"} for c in r["guard"]["candidates"]] for r in (streamed, memory)
    ]
    assert untimed[0] == untimed[1]


def test_parquet_training_over_many_small_chunks_learns_the_sequences(make_config, tmp_path):
    from tests.support.student import cyclic_interactions, group_profiles

    interactions = cyclic_interactions(num_users=60, length=25, seed=2)
    seqs = user_sequences(interactions)
    _write_parts(_users_table(seqs, group_profiles(sorted(seqs))), tmp_path / "users", parts=6)
    result = train_from_parquet(
        # the guard scores the first item after its cutoff: only that one follows from the history here
        make_config("train.epochs=30", "train.eval_every=5", "guard.targets_per_user=1"),
        f"file://{tmp_path / 'users'}",
        interactions.item_id,
        8,
        tmp_path / "ckpt",
        validate=True,
        batch_rows=8,
    )
    assert result["users"] == 60 and result["users_with_profile"] == 60
    assert result["best_valid"]["ndcg@10"] > 0.9 > result["popularity_valid"]["ndcg@10"] + 0.5
    assert not result["ranks_by_popularity"] and result["variant"] != "popularity"
