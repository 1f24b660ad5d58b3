"""The tombstone list of erasure (profile_features/erasure): salted SHA-256 hashes of forgotten user ids
under `<data_dir>/tombstones`. A root module, not in erasure/, because validation (spark/) reads it and
erasure/ imports spark/: folders import each other one way (tests/unit/test_layout.py).

Layout: `salt` (hex, made once per data_dir) and one `v<NNNNNN>.json` per version, each holding the
whole sorted list of hashes ({"version", "created_at", "hashes"}); the newest version is the list. A
version is written only when a request adds a hash, so re-running a request changes nothing. Raw ids
are never written; the salt keeps the hashes from matching across deployments (whoever holds the salt
can still test a guessed id, which is what validation needs to do).

`reject_forgotten` is validation's hook: interactions of a forgotten user get the reason
`forgotten user`, their user id and the user id inside the reject `record` replaced by the hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from profile_features import storage
from profile_features.catalogue import TOMBSTONES, DataDir

__all__ = ["FORGOTTEN_USER", "Tombstones", "hash_user_id", "load_tombstones", "add_tombstones", "reject_forgotten"]

FORGOTTEN_USER = "forgotten user"
_VERSION = re.compile(r"^v(\d{6,})\.json$")


def hash_user_id(salt: str, user_id: str) -> str:
    """sha256(salt + id) in hex; the same as Spark's `sha2(concat(salt, user_id), 256)`."""
    return hashlib.sha256((salt + user_id).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tombstones:
    salt: str
    version: int  # 0: no list yet
    hashes: frozenset[str]

    def hash(self, user_id: str) -> str:
        return hash_user_id(self.salt, user_id)


def _salt(root: str, create: bool) -> str | None:
    path = storage.join(root, "salt")
    if storage.exists(path):
        return storage.read_text(path).strip()
    if not create:
        return None
    storage.write_text(path, secrets.token_hex(16))
    return storage.read_text(path).strip()


def _versions(root: str) -> list[int]:
    return sorted(int(m.group(1)) for m in map(_VERSION.match, storage.list_dir(root)) if m)


def load_tombstones(data_dir: str) -> Tombstones | None:
    """The newest tombstone list of `data_dir`, or None when nobody was ever forgotten there."""
    root = DataDir(data_dir).root(TOMBSTONES)
    versions = _versions(root)
    salt = _salt(root, create=False)
    if not versions or salt is None:
        return None
    record = storage.read_json(storage.join(root, f"v{versions[-1]:06d}.json"))
    return Tombstones(salt, versions[-1], frozenset(record["hashes"]))


def add_tombstones(data_dir: str, user_ids: Iterable[str]) -> tuple[Tombstones, int]:
    """Add the ids' hashes to the list (a new version when any is new); (the list now, hashes added).

    Run by one erasure at a time (as any job writing `data_dir`): two concurrent requests could both
    write the next version, and the later file would win."""
    root = DataDir(data_dir).root(TOMBSTONES)
    salt = _salt(root, create=True)
    current = load_tombstones(data_dir) or Tombstones(salt, 0, frozenset())
    new = {hash_user_id(salt, u) for u in user_ids} - current.hashes
    if not new:
        return current, 0
    version = current.version + 1
    hashes = sorted(current.hashes | new)
    created = datetime.now(timezone.utc).isoformat()
    storage.write_json(
        storage.join(root, f"v{version:06d}.json"), {"version": version, "created_at": created, "hashes": hashes}
    )
    return Tombstones(salt, version, frozenset(hashes)), len(new)


def reject_forgotten(classified, data_dir: str):
    """Validation's hook: rows of `classified` (interactions with their verdict: `reject_reason`,
    `record`) whose normalised user id is tombstoned become rejects with reason FORGOTTEN_USER, the
    user id replaced by its hash in the row and in its `record`. Unchanged when there is no list."""
    from pyspark.sql import functions as F

    tombstones = load_tombstones(data_dir)
    if tombstones is None or not tombstones.hashes:
        return classified
    spark = classified.sparkSession
    listed = spark.createDataFrame([(h,) for h in sorted(tombstones.hashes)], "_forgotten string")
    hashed = classified.withColumn("_user_hash", F.sha2(F.concat(F.lit(tombstones.salt), F.col("user_id")), 256))
    flagged = hashed.join(F.broadcast(listed), F.col("_user_hash") == F.col("_forgotten"), "left")
    forgotten = F.col("_forgotten").isNotNull()
    scrubbed_record = F.expr(
        "to_json(map_concat(map_filter(coalesce(from_json(record, 'map<string,string>'), "
        "cast(map() AS map<string,string>)), (k, v) -> k != 'user_id'), map('user_id', _user_hash)))"
    )
    return (
        flagged.withColumn("reject_reason", F.when(forgotten, F.lit(FORGOTTEN_USER)).otherwise(F.col("reject_reason")))
        .withColumn("record", F.when(forgotten, scrubbed_record).otherwise(F.col("record")))
        .withColumn("user_id", F.when(forgotten, F.col("_user_hash")).otherwise(F.col("user_id")))
        .drop("_user_hash", "_forgotten")
    )
