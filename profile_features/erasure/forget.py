"""`forget_users(config, user_ids)`: remove users from everything the jobs keep, then record it.

Order, chosen so that a kill anywhere leaves a state a re-run finishes:
  1. tombstones first: from then on validation keeps the users out, even if the rest never runs;
  2. the profile cache (found through the histories' hashes, so before the histories lose the user),
     then every other personal Parquet table, partition by partition (`tables.py`);
  3. scratch folders (`_staging`, `_tmp`, student training buckets), when no commit is in flight;
  4. JSON/text files naming an id (`files.py`);
  5. the Feast online store, when a repo is given (`online.py`);
  6. evaluate's work folders, when given (`evaluation.py`: each run's data folder like a data_dir);
  7. user-keyed files outside data_dir: those given and the job's refresh list (`outside.py`);
  8. the audit record (`audit.py`).
Run it while no job writes `data_dir` (as two jobs of one stage never run at once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from profile_features import storage
from profile_features.catalogue import PROFILE_CACHE, PROFILE_DEAD_LETTERS, STAGING, STUDENT_TRAINING, DataDir, Table
from profile_features.config import JobConfig
from profile_features.erasure.audit import audit_record, write_audit
from profile_features.erasure.evaluation import forget_in_evaluation
from profile_features.erasure.files import scrub_files
from profile_features.erasure.ids import normalize_user_ids
from profile_features.erasure.online import OnlineResult, forget_online
from profile_features.erasure.outside import check_file, forget_in_file
from profile_features.erasure.tables import (
    forget_in_partition,
    history_hashes,
    parquet_tables,
    partitions_of,
    settle_tables,
)
from profile_features.spark.session import build_spark
from profile_features.tombstones import add_tombstones

__all__ = ["ForgetResult", "forget_users", "scratch_folders"]

log = logging.getLogger(__name__)
Step = Callable[[str], None]


@dataclass(frozen=True)
class ForgetResult:
    users: int
    tombstone_version: int
    tables: dict  # table name -> {"rows_removed": n, "partitions_rewritten": [labels]}
    online: OnlineResult | None
    audit_path: str
    record: dict


def _outside_files(config: JobConfig, files: Sequence[str | Path]) -> list[str]:
    """The files given, and the job's refresh list when it names one that exists (no duplicates, in order)."""
    listed = [str(f) for f in files]
    refresh = config.profile.only_users
    if refresh and storage.exists(refresh) and str(refresh) not in listed:
        listed.append(str(refresh))
    return list(dict.fromkeys(listed))


def _table_root(config: JobConfig, table: Table) -> str | None:
    """A configured folder outside the data_dir layout, if the config names one."""
    if table is PROFILE_CACHE:
        return config.profile.cache.path
    if table is PROFILE_DEAD_LETTERS:
        return config.profile.dead_letter_path
    return None


def _forget_tables(spark, config: JobConfig, user_ids: list[str], step: Step) -> dict:
    data = DataDir(config.data_dir)
    settle_tables(spark, [_table_root(config, t) or data.root(t) for t in parquet_tables()])
    hashes = history_hashes(spark, data, user_ids)
    tables: dict = {}
    for table in parquet_tables():
        removed, rewritten = 0, []
        for label, path in partitions_of(data, table, _table_root(config, table)):
            result = forget_in_partition(spark, table, label, path, user_ids, hashes)
            if result.rows_removed:
                removed += result.rows_removed
                rewritten.append(label or "(whole table)")
                log.info("forget: %s %s: removed %d rows", table.name, label, result.rows_removed)
        tables[table.name] = {"rows_removed": removed, "partitions_rewritten": rewritten}
        step(table.name)
    return tables


def scratch_folders(config: JobConfig) -> list[str]:
    """Scratch that may hold copies of personal rows: every `_staging` and `_tmp` folder under data_dir
    (and the configured cache / dead-letter roots), and the student's training buckets."""
    from pyarrow import fs

    roots = [config.data_dir] + [r for r in (config.profile.cache.path, config.profile.dead_letter_path) if r]
    found = [DataDir(config.data_dir).root(STUDENT_TRAINING)]
    for root in roots:
        filesystem, base = storage.filesystem(root)
        base = base.rstrip("/")
        infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
        for info in infos:
            if info.type == fs.FileType.Directory and info.base_name in (STAGING.name, "_tmp"):
                found.append(storage.join(root, info.path[len(base) + 1 :]))
    return found


def _delete_scratch(config: JobConfig) -> list[str]:
    """Delete the folders' data; a `_staging` folder holding a lock (a commit in flight, or killed and
    not yet repaired) keeps everything, and is reported, so no live commit loses its staging."""
    deleted = []
    root = storage.normalize(config.data_dir).rstrip("/")
    for folder in scratch_folders(config):
        names = storage.list_dir(folder)
        if any(n.endswith(".lock") or ".lock.repair-" in n for n in names):
            log.warning(
                "forget: %s holds a commit lock; its staging is kept (re-run forget once it is settled)", folder
            )
            continue
        for name in names:
            if folder.endswith(f"/{STAGING.name}") and name == STUDENT_TRAINING.name.split("/")[-1]:
                continue  # listed on its own
            storage.delete(storage.join(folder, name))
            deleted.append(storage.join(folder, name).removeprefix(root + "/"))
    return deleted


def forget_users(
    config: JobConfig,
    user_ids,
    repo: str | Path | None = None,
    feature_store_yaml: str | Path | None = None,
    spark=None,
    step: Step | None = None,
    evaluations: Sequence[str | Path] = (),
    files: Sequence[str | Path] = (),
) -> ForgetResult:
    """Forget `user_ids` everywhere under `config.data_dir` (every snapshot) and, given a Feast `repo`,
    in its online store. Idempotent: a re-run (after a kill) finishes the job.

    Args:
        spark: a session to use (None: the active one, else one from `config.spark`, stopped at the end).
        step: called after each stage of the work with its name (tests stop the run there).
        evaluations: `evaluate` work folders to forget the users in too (erasure/evaluation.py).
        files: Parquet / CSV files outside data_dir with a user_id column (refresh plans, exports) to remove
            the users' rows from; the job's `profile.only_users` refresh list is always included.
    """
    step = step or (lambda name: None)
    started = datetime.now(timezone.utc)
    ids = normalize_user_ids(user_ids)
    outside_files = _outside_files(config, files)
    for path in outside_files:
        check_file(path)
    request_id = uuid.uuid4().hex[:12]
    tombstones, added = add_tombstones(config.data_dir, ids)
    step("tombstoned")
    own_session = False
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()  # a caller's session is used, and left running
        if spark is None:
            spark, own_session = build_spark(config.spark), True
    try:
        tables = _forget_tables(spark, config, ids, step) if ids else {}
        scratch = _delete_scratch(config)
        step("scratch")
        files = scrub_files(config.data_dir, ids, lambda found: f"forgotten:{tombstones.hash(found)[:16]}")
        step("files")
        online = forget_online(repo, ids, feature_store_yaml) if repo is not None and ids else None
        step("online")
        evaluated = {
            str(folder): forget_in_evaluation(config, ids, folder, forget_users, spark) for folder in evaluations
        }
        if evaluations:
            step("evaluations")
        outside = {path: forget_in_file(path, ids) for path in outside_files}
        if outside:
            step("outside files")
    finally:
        if own_session:
            spark.stop()
    record = audit_record(
        request_id,
        started,
        datetime.now(timezone.utc),
        users=len(ids),
        tombstone_version=tombstones.version,
        tombstones_added=added,
        tables=tables,
        files={"rewritten": files.rewritten, "deleted": files.deleted},
        scratch_deleted=scratch,
        online={**asdict(online), "views": list(online.views)} if online else None,
        evaluations=evaluated,
        outside_files=outside,
    )
    path = write_audit(config.data_dir, record)
    return ForgetResult(len(ids), tombstones.version, tables, online, path, record)
