"""Two-tower retrieval on the served vectors, with and without the semantic inputs.

A team whose first stage is a two-tower model wants to know what the plugin's
vectors add to it. Both variants share the architecture, the training budget and
the seeds; only the dense inputs differ:

- item tower: a learned item-ID embedding (+ the item text embedding through an MLP);
- user tower: the mean ID embedding of the user's history at the snapshot (+ every
  user vector of the `two_tower` feature service through an MLP: the student
  embedding, the profile embedding, the student-predicted profile). A missing
  vector is zeros plus a 0/1 "present" flag, so users without a profile still
  get a representation, the way they would at serving time.

Training mimics serving: (user, positive item) pairs of users active between the
two snapshot cutoffs, with the service's features from `get_historical_features`
at the user's first interaction in the window (so the first snapshot) and
histories from the first snapshot's table. Evaluation materializes the second
snapshot, reads test users' and all items' vectors with `get_online_features`,
ranks the whole catalogue minus what each user had seen before the test cutoff,
and scores it against the items each user interacts with after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from profile_features.catalogue import HISTORIES, ITEM_TEXT_EMBEDDINGS, Snapshot, Table
from profile_features.evaluation.candidates import candidate_rows
from profile_features.metrics import hit_rate_at_k, ndcg_at_k, recall_at_k, reciprocal_rank

__all__ = [
    "SERVICE",
    "VARIANTS",
    "TwoTowerConfig",
    "DenseEncoder",
    "TowerInputs",
    "TrainingSet",
    "HeldOutSet",
    "service_features",
    "snapshot_table",
    "online_frame",
    "training_set",
    "held_out_set",
    "split_validation",
    "fit_two_tower",
    "score_items",
    "retrieval_metrics",
    "evaluate_two_tower",
    "TwoTowerResults",
    "SELECT_METRIC",
]

SERVICE = "two_tower"
VARIANTS = {"without semantic inputs": False, "with semantic inputs": True}  # name -> uses the dense inputs


SELECT_METRIC = "recall@50"  # what early stopping and the choice of inputs look at: a retrieval stage's job


@dataclass(frozen=True)
class TwoTowerResults:
    test: pd.DataFrame  # long format, as the other rankers (model, variant, seed, slice, metric, value, users)
    valid: pd.DataFrame  # variant, seed, user_id, value: SELECT_METRIC per validation user at the kept epoch
    test_per_user: pd.DataFrame | None = None  # variant, seed, user_id, value: SELECT_METRIC per test user


@dataclass(frozen=True)
class TwoTowerConfig:
    """One training budget for both variants (a fair ablation changes only the inputs)."""

    dim: int = 64  # output dimension of both towers (L2-normalised)
    hidden: int = 128  # width of the dense-input MLPs
    dropout: float = 0.2
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    # At most this many epochs; with validation users each variant keeps its best epoch by
    # validation Recall@50 and stops after `patience` epochs without a gain.
    epochs: int = 50
    patience: int = 3
    temperature: float = 0.1  # initial softmax temperature; learned (log scale) from there
    threads: int = 1  # the towers are tiny; a second thread mostly adds contention on a shared machine


def _is_vector(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0


# A training spread at or below this is a constant dimension (float32 vectors: far below any real spread).
CONSTANT_SPREAD = 1e-6


def vector_block(values: pd.Series, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 rows, zeros where the vector is missing, and the (n,) present mask."""
    raw = values.to_numpy()
    present = np.array([_is_vector(v) for v in raw], dtype=bool)
    block = np.zeros((len(raw), dim), dtype=np.float32)
    if present.any():
        block[present] = np.stack([np.asarray(v, dtype=np.float32) for v in raw[present]])
    return block, present


@dataclass(frozen=True)
class DenseEncoder:
    """Vector columns -> one tower input: each vector standardised per dimension with
    statistics of the training rows (sentence vectors are anisotropic: most of their raw
    value is a direction every row shares), zeros where missing, then one present flag
    per column. Fitted once on training rows, reused unchanged on serving rows.

    A column no training row has (its width unknown) reads as absent on every row, and a
    dimension constant on the training rows reads 0 on every row: the model never saw it vary,
    so a serving value there is not evidence it learnt to use. (Dividing by its near-zero spread
    blew such a value up a million times: the student that shipped the popularity prior serves
    all-zero item vectors, its successor real ones, and the tower trained on the first read the
    second as noise.)"""

    columns: tuple[str, ...]
    means: tuple[np.ndarray, ...]
    scales: tuple[np.ndarray, ...]  # 1 / training spread, 0 where the training rows never varied

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str]) -> DenseEncoder:
        means, scales = [], []
        for column in columns:
            sample = next((v for v in frame[column] if _is_vector(v)), None)
            if sample is None:  # never present in training (the popularity prior serves no item side): never read
                means.append(np.zeros(0, np.float32))
                scales.append(np.zeros(0, np.float32))
                continue
            block, present = vector_block(frame[column], len(sample))
            spread = block[present].std(axis=0)
            means.append(block[present].mean(axis=0))
            scales.append(np.where(spread > CONSTANT_SPREAD, 1.0 / np.maximum(spread, CONSTANT_SPREAD), 0.0))
        return cls(tuple(columns), tuple(means), tuple(scales))

    @property
    def width(self) -> int:
        return sum(len(m) for m in self.means) + len(self.columns)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(len(frame), width) float32."""
        parts, flags = [], []
        for column, mean, scale in zip(self.columns, self.means, self.scales):
            if not len(mean):  # absent from every training row: its flag stays 0, as the tower was trained
                flags.append(np.zeros((len(frame), 1), np.float32))
                continue
            block, present = vector_block(frame[column], len(mean))
            parts.append((block - mean) * scale * present[:, None])
            flags.append(present.astype(np.float32)[:, None])
        return (
            np.concatenate(parts + flags, axis=1).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)
        )


@dataclass(frozen=True)
class TowerInputs:
    """What both towers read, for U users against a catalogue of I items.

    users: (U,) ids; history: U arrays of catalogue positions (the snapshot's history,
    oldest first; may be empty); user_dense: (U, Du); item_dense: (I, Di).
    """

    users: np.ndarray
    history: list[np.ndarray]
    user_dense: np.ndarray
    item_dense: np.ndarray


@dataclass(frozen=True)
class TrainingSet:
    """inputs; row_user, row_item: (R,) positions of each (user, positive) pair;
    known: (U, I) items each user is known to have had (history + the window's positives)."""

    inputs: TowerInputs
    row_user: np.ndarray
    row_item: np.ndarray
    known: np.ndarray


@dataclass(frozen=True)
class HeldOutSet:
    """inputs; seen: (U, I) items the user had before the test cutoff (never recommended);
    targets: (U, I) items the user interacts with in the test window."""

    inputs: TowerInputs
    seen: np.ndarray
    targets: np.ndarray


def service_features(store, service: str = SERVICE) -> dict[str, list[str]]:
    """The service's feature refs ("view:feature") grouped by join key (user_id / item_id)."""
    refs: dict[str, list[str]] = {}
    for projection in store.get_feature_service(service).feature_view_projections:
        keys = [column.name for column in store.get_feature_view(projection.name).entity_columns]
        if len(keys) != 1:
            raise ValueError(f"{projection.name}: a tower input needs a view keyed by one entity, got {keys}")
        refs.setdefault(keys[0], []).extend(f"{projection.name_to_use()}:{f.name}" for f in projection.features)
    return refs


def _names(refs: Sequence[str]) -> list[str]:
    return [ref.split(":", 1)[1] for ref in refs]


def snapshot_table(repo: Path, table: Table, cutoff: datetime) -> pd.DataFrame:
    """One snapshot (the cutoff's partition) of a pipeline table under the repo's data_dir (a path or URI)."""
    from profile_features import storage
    from profile_features.feast import load_feast_settings
    from profile_features.freshness.runs import read_run

    snapshot = Snapshot(load_feast_settings(Path(repo) / "profile_features.yaml").data_dir, cutoff)
    path = snapshot.path(table)
    if not storage.exists(path):
        raise FileNotFoundError(f"no {table.name} snapshot at {path}: was the repo built with this cutoff?")
    frame = read_run(snapshot, table, snapshot.run_date)
    if not (frame.event_timestamp == pd.Timestamp(cutoff)).all():
        raise ValueError(f"{path} holds another cutoff than {cutoff}: pass the snapshot cutoffs themselves")
    return frame


def _histories(repo: Path, cutoff: datetime, users: np.ndarray, positions: dict[str, int]) -> list[np.ndarray]:
    """Each user's history items at the snapshot as catalogue positions (empty when the user has none)."""
    table = snapshot_table(repo, HISTORIES, cutoff).set_index("user_id").item_ids
    return [np.array([positions[i] for i in table.get(u, []) if i in positions], dtype=np.int64) for u in users]


def _user_item_matrix(pairs: pd.DataFrame, users: np.ndarray, positions: dict[str, int]) -> np.ndarray:
    """(U, I) bool: True where `pairs` holds (user, item)."""
    user_index = {u: n for n, u in enumerate(users)}
    pairs = pairs[pairs.user_id.isin(user_index) & pairs.item_id.isin(positions)]
    matrix = np.zeros((len(users), len(positions)), dtype=bool)
    matrix[pairs.user_id.map(user_index).to_numpy(int), pairs.item_id.map(positions).to_numpy(int)] = True
    return matrix


def online_frame(store, key: str, ids: Sequence[str], refs: Sequence[str], snapshot: datetime) -> pd.DataFrame:
    """The refs' online values for `ids`, indexed by id.

    Raises:
        RuntimeError: a value comes from a snapshot newer than `snapshot` (the online
            store was materialized past it: the evaluation would see the future).
    """
    frame = store.get_online_features(features=list(refs), entity_rows=[{key: i} for i in ids]).to_df(
        include_event_timestamps=True
    )
    stamps = frame[[f"{name}__ts" for name in _names(refs)]].to_numpy()
    if (stamps > pd.Timestamp(snapshot).timestamp()).any():
        raise RuntimeError(f"the online store holds values newer than {snapshot}: materialize [.., {snapshot}] only")
    return frame.set_index(key)[_names(refs)]


def _catalogue(repo: Path, interactions: pd.DataFrame, cutoff: datetime) -> np.ndarray:
    items = snapshot_table(repo, ITEM_TEXT_EMBEDDINGS, cutoff).item_id
    return np.array(sorted(set(items) | set(interactions.item_id)))


def _historical_vectors(
    store, pairs: pd.DataFrame, catalogue: np.ndarray, snapshot: datetime, refs: dict[str, list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The service's user vectors for each user of `pairs` as of its rows, and every catalogue
    item's vectors as of `snapshot`, from `get_historical_features` (point-in-time)."""
    rows = store.get_historical_features(entity_df=pairs, features=store.get_feature_service(SERVICE)).to_df()
    if len(rows) != len(pairs):  # the DuckDB offline store returns every entity row; Dask did not
        raise RuntimeError(f"get_historical_features returned {len(rows)} of {len(pairs)} rows")
    # All rows of a user share one timestamp, hence one snapshot: any row carries the user's vectors.
    users = rows.sort_values("user_id").drop_duplicates("user_id").set_index("user_id")[_names(refs["user_id"])]
    item_rows = pd.DataFrame({"item_id": catalogue, "event_timestamp": pd.Timestamp(snapshot)})
    item_rows["event_timestamp"] = item_rows.event_timestamp.astype("datetime64[us, UTC]")
    items = store.get_historical_features(entity_df=item_rows, features=refs["item_id"]).to_df()
    return users, items.set_index("item_id").reindex(catalogue)[_names(refs["item_id"])]


def training_set(
    store, repo: Path, interactions: pd.DataFrame, catalogue: np.ndarray, start: datetime, end: datetime
) -> tuple[TrainingSet, DenseEncoder, DenseEncoder]:
    """(user, positive) pairs of users active in [start, end) with the `start` snapshot's vectors.

    Returns:
        (the set, the user and item encoders fitted on its rows, to encode serving rows alike).
    """
    refs = service_features(store)
    pairs = candidate_rows(interactions, catalogue, start, end, 0, np.random.default_rng(0))  # positives only
    pairs = pairs[["user_id", "item_id", "event_timestamp"]]
    users, items = _historical_vectors(store, pairs, catalogue, start, refs)
    positions = {item: n for n, item in enumerate(catalogue)}
    user_ids = users.index.to_numpy()
    history = _histories(repo, start, user_ids, positions)
    known = _user_item_matrix(pairs, user_ids, positions)
    for row, items_had in enumerate(history):
        known[row, items_had] = True
    user_encoder = DenseEncoder.fit(users, _names(refs["user_id"]))
    item_encoder = DenseEncoder.fit(items, _names(refs["item_id"]))
    inputs = TowerInputs(user_ids, history, user_encoder.transform(users), item_encoder.transform(items))
    user_index = {u: n for n, u in enumerate(user_ids)}
    row_user, row_item = pairs.user_id.map(user_index).to_numpy(int), pairs.item_id.map(positions).to_numpy(int)
    return TrainingSet(inputs, row_user, row_item, known), user_encoder, item_encoder


def held_out_set(
    store,
    repo: Path,
    interactions: pd.DataFrame,
    catalogue: np.ndarray,
    cutoff: datetime,
    end: datetime,
    user_encoder: DenseEncoder,
    item_encoder: DenseEncoder,
) -> HeldOutSet:
    """Users active in [cutoff, end) with their vectors read from the online store."""
    refs = service_features(store)
    ts = interactions.timestamp
    window = interactions[(ts >= pd.Timestamp(cutoff)) & (ts < pd.Timestamp(end))]
    users = np.array(sorted(window.user_id.unique()))
    positions = {item: n for n, item in enumerate(catalogue)}
    inputs = TowerInputs(
        users,
        _histories(repo, cutoff, users, positions),
        user_encoder.transform(online_frame(store, "user_id", users, refs["user_id"], cutoff)),
        item_encoder.transform(online_frame(store, "item_id", catalogue, refs["item_id"], cutoff)),
    )
    seen = _user_item_matrix(interactions[ts < pd.Timestamp(cutoff)], users, positions)
    return HeldOutSet(inputs, seen, _user_item_matrix(window, users, positions))


def split_validation(train: TrainingSet, valid_users) -> tuple[TrainingSet, HeldOutSet | None]:
    """Hold `valid_users` out of training: their pairs become a validation set scored like the
    test set (their snapshot vectors and history; targets = their window items, never recommended:
    what they had before the window)."""
    users = train.inputs.users
    is_valid = np.isin(users, list(valid_users))
    if not is_valid.any() or is_valid.all():
        return train, None
    keep_rows = ~is_valid[train.row_user]
    fit = TrainingSet(train.inputs, train.row_user[keep_rows], train.row_item[keep_rows], train.known)
    rows = np.flatnonzero(is_valid)
    targets = np.zeros((len(rows), train.known.shape[1]), dtype=bool)
    position = {row: n for n, row in enumerate(rows)}
    valid_pairs = ~keep_rows
    targets[[position[r] for r in train.row_user[valid_pairs]], train.row_item[valid_pairs]] = True
    seen = np.zeros_like(targets)
    for n, row in enumerate(rows):
        seen[n, train.inputs.history[row]] = True
    inputs = TowerInputs(
        users[rows], [train.inputs.history[r] for r in rows], train.inputs.user_dense[rows], train.inputs.item_dense
    )
    return fit, HeldOutSet(inputs, seen, targets)


def _tower_model(n_items: int, user_width: int, item_width: int, config: TwoTowerConfig):
    import torch
    from torch import nn
    from torch.nn import functional as F

    def mlp(width: int):
        return (
            nn.Sequential(
                nn.Dropout(config.dropout),
                nn.Linear(width, config.hidden),
                nn.GELU(),
                nn.Linear(config.hidden, config.dim),
            )
            if width
            else None
        )

    class TwoTower(nn.Module):
        """Item-ID embeddings shared by both towers (the history mean and the item), each tower
        optionally adding its dense MLP, then a linear head and L2 normalisation."""

        def __init__(self):
            super().__init__()
            self.item_embedding = nn.Embedding(n_items, config.dim)
            nn.init.normal_(self.item_embedding.weight, std=0.1)
            self.user_dense, self.item_dense = mlp(user_width), mlp(item_width)
            self.user_head = nn.Linear(config.dim * (2 if user_width else 1) + 1, config.dim)
            self.item_head = nn.Linear(config.dim * (2 if item_width else 1), config.dim)
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))

        def users(self, history, offsets, empty, dense):
            """history: (H,) positions of all users' items concatenated, offsets: (U,) starts,
            empty: (U, 1) 1.0 for users without a history (their mean is zeros), dense: (U, Du)."""
            parts = [F.embedding_bag(history, self.item_embedding.weight, offsets, mode="mean"), empty]
            if self.user_dense is not None:
                parts.append(self.user_dense(dense))
            return F.normalize(self.user_head(torch.cat(parts, dim=1)), dim=1)

        def items(self, dense):
            parts = [self.item_embedding.weight] + ([self.item_dense(dense)] if self.item_dense is not None else [])
            return F.normalize(self.item_head(torch.cat(parts, dim=1)), dim=1)

        def logits(self, users, items):
            return users @ items.T * self.log_scale.clamp(max=math.log(100.0)).exp()

    return TwoTower()


def _tensors(inputs: TowerInputs, semantic: bool) -> tuple[dict, object]:
    """Tower inputs as tensors: the user tower's keyword arguments and the item tower's dense matrix."""
    import torch

    lengths = np.array([len(h) for h in inputs.history])
    flat = np.concatenate(inputs.history) if len(inputs.history) else np.zeros(0, np.int64)
    user_dense = inputs.user_dense if semantic else inputs.user_dense[:, :0]
    item_dense = inputs.item_dense if semantic else inputs.item_dense[:, :0]
    users = {
        "history": torch.from_numpy(flat.astype(np.int64)),
        "offsets": torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)),
        "empty": torch.from_numpy((lengths == 0).astype(np.float32)[:, None]),
        "dense": torch.from_numpy(np.ascontiguousarray(user_dense)),
    }
    return users, torch.from_numpy(np.ascontiguousarray(item_dense))


def fit_two_tower(
    train: TrainingSet,
    semantic: bool,
    seed: int,
    config: TwoTowerConfig = TwoTowerConfig(),
    log: Callable[[str], None] | None = None,
    valid: HeldOutSet | None = None,
):
    """Train one variant; returns the model (eval mode), at its best validation epoch when
    `valid` is given (Recall@50 over the catalogue, checked after every epoch).

    Loss: full softmax over the whole catalogue. The catalogues this evaluates on hold
    hundreds to a few thousand items, so every step can afford the exact (batch x items)
    product: no negative sampling, hence no sampling bias for a logQ correction to undo.
    Items the user already had (history, the window's other positives) are masked out of
    the denominator: they are not negatives, and evaluation never ranks them either.
    """
    import torch
    from torch.nn import functional as F

    torch.set_num_threads(min(config.threads, 2))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    users, item_dense = _tensors(train.inputs, semantic)
    model = _tower_model(len(train.known[0]), users["dense"].shape[1], item_dense.shape[1], config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    row_user, row_item = torch.from_numpy(train.row_user), torch.from_numpy(train.row_item)
    known = torch.from_numpy(train.known)
    best, best_state, stale = -1.0, None, 0
    model.validation_recall, model.best_epoch = [], config.epochs  # per epoch; the epoch kept (1-based)
    for epoch in range(config.epochs):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(row_user), generator=generator).split(config.batch_size):
            # Every user and item is re-encoded per step: both sets are small, and it keeps
            # dropout and the shared ID table consistent between the towers.
            user_vectors, item_vectors = model.users(**users), model.items(item_dense)
            logits = model.logits(user_vectors[row_user[batch]], item_vectors)
            mask = known[row_user[batch]].clone()
            mask[torch.arange(len(batch)), row_item[batch]] = False
            loss = F.cross_entropy(logits.masked_fill(mask, float("-inf")), row_item[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        if log is not None and (epoch + 1) % 10 == 0:
            log(f"    epoch {epoch + 1}: loss {total / len(row_user):.4f}")
        if valid is not None:
            per_user = retrieval_metrics(score_items(model.eval(), valid.inputs, semantic), valid.seen, valid.targets)
            score = float(per_user[SELECT_METRIC].mean()) if len(per_user) else 0.0
            model.validation_recall.append(score)
            if score > best:
                best, stale, model.best_epoch = score, 0, epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def score_items(model, inputs: TowerInputs, semantic: bool) -> np.ndarray:
    """(U, I) cosine of each user's vector with each item's."""
    import torch

    users, item_dense = _tensors(inputs, semantic)
    with torch.no_grad():
        return (model.users(**users) @ model.items(item_dense).T).numpy()


def retrieval_metrics(scores: np.ndarray, seen: np.ndarray, targets: np.ndarray, k: int = 10) -> pd.DataFrame:
    """Per-user NDCG@k, Recall@k, Recall@50, HR@k and MRR over the catalogue minus the user's
    seen items; one row per user that still has a target (others have no metric).
    Args: scores, seen, targets: (U, I)."""
    rows = {}
    for user in range(len(scores)):
        keep = ~seen[user]
        labels, user_scores = targets[user, keep].astype(float), scores[user, keep]
        if not labels.any():
            continue
        values = {f"ndcg@{k}": ndcg_at_k(labels, user_scores, k)}
        values |= {f"recall@{cut}": recall_at_k(labels, user_scores, cut) for cut in sorted({k, 50})}
        rows[user] = values | {
            f"hr@{k}": hit_rate_at_k(labels, user_scores, k),
            "mrr": reciprocal_rank(labels, user_scores),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _records(
    per_user: pd.DataFrame, users: np.ndarray, variant: str, seed: int, slices: dict[str, Collection[str]] | None
) -> list[dict]:
    frames = (
        {"all": per_user}
        if slices is None
        else {name: per_user[np.isin(users[per_user.index], list(members))] for name, members in slices.items()}
    )
    return [
        {
            "model": "two_tower",
            "variant": variant,
            "seed": seed,
            "slice": name,
            "metric": metric,
            "value": float(frame[metric].mean()) if len(frame) else float("nan"),
            "users": len(frame),
        }
        for name, frame in frames.items()
        for metric in per_user.columns
    ]


def _select_metric_rows(per_user: pd.DataFrame, users: np.ndarray, variant: str, seed: int) -> pd.DataFrame:
    """variant, seed, user_id, value: each scored user's SELECT_METRIC (the paired statistics read these)."""
    values = per_user[SELECT_METRIC].to_numpy()
    return pd.DataFrame({"variant": variant, "seed": seed, "user_id": users[per_user.index], "value": values})


def evaluate_two_tower(
    repo: Path,
    interactions: pd.DataFrame,
    train_cutoff: datetime,
    test_cutoff: datetime,
    end: datetime,
    seeds: Sequence[int],
    k: int = 10,
    slices: dict[str, Collection[str]] | None = None,
    epochs: int = 50,
    valid_users: Collection[str] = (),
    log: Callable[[str], None] = print,
) -> TwoTowerResults:
    """Train both variants per seed on the first snapshot, evaluate on the online features.

    With `valid_users` (training-window users held out), each variant stops at its best
    validation epoch (at most `epochs`). `slices`: name -> test users (default: "all" = every
    test user).

    `repo` must be applied, with snapshots at both cutoffs. Its online store is loaded
    with `feast materialize <train_cutoff> <test_cutoff>` (a fixed range, not
    materialize-incremental: that starts at now - ttl on its first run, which misses
    old data such as ml-100k's 1998, and never goes back), so it then serves the test
    snapshot even if it had been materialized further before.

    Returns:
        test: long format: model ("two_tower"), variant, seed, slice, metric (ndcg@k, recall@k,
        recall@50, hr@k, mrr), value (mean over the slice's users with a target), users;
        valid: each validation user's SELECT_METRIC per variant and seed (empty without validation users),
        for `selection.recommend`.
    """
    from feast import FeatureStore

    from profile_features.pipeline import feast_cli

    repo = Path(repo)
    log(f"  two-tower: feast materialize {train_cutoff:%Y-%m-%d} .. {test_cutoff:%Y-%m-%d}")
    window = [f"{pd.Timestamp(t).tz_convert('UTC'):%Y-%m-%dT%H:%M:%S}" for t in (train_cutoff, test_cutoff)]
    feast_cli(repo, "materialize", *window)
    store = FeatureStore(repo_path=str(repo))
    catalogue = _catalogue(repo, interactions, test_cutoff)
    train, user_encoder, item_encoder = training_set(store, repo, interactions, catalogue, train_cutoff, test_cutoff)
    test = held_out_set(store, repo, interactions, catalogue, test_cutoff, end, user_encoder, item_encoder)
    train, valid = split_validation(train, valid_users)
    log(
        f"  two-tower: train {len(train.row_user)} pairs, {0 if valid is None else len(valid.inputs.users)} validation "
        f"users, test {len(test.inputs.users)} users, {len(catalogue)} items"
    )
    config = TwoTowerConfig(epochs=epochs)
    records, valid_rows, test_rows = [], [], []
    for seed in seeds:
        for variant, semantic in VARIANTS.items():
            model = fit_two_tower(train, semantic, seed, config, valid=valid)
            per_user = retrieval_metrics(score_items(model, test.inputs, semantic), test.seen, test.targets, k)
            records += _records(per_user, test.inputs.users, variant, seed, slices)
            test_rows.append(_select_metric_rows(per_user, test.inputs.users, variant, seed))
            log(f"  two-tower seed {seed}, {variant}: " + ", ".join(f"{m} {v:.4f}" for m, v in per_user.mean().items()))
            if valid is not None:
                scored = retrieval_metrics(score_items(model, valid.inputs, semantic), valid.seen, valid.targets, k)
                valid_rows.append(_select_metric_rows(scored, valid.inputs.users, variant, seed))
    columns = ["variant", "seed", "user_id", "value"]
    valid_frame = pd.concat(valid_rows, ignore_index=True) if valid_rows else pd.DataFrame(columns=columns)
    return TwoTowerResults(pd.DataFrame(records), valid_frame, pd.concat(test_rows, ignore_index=True))
