"""Erasure (issue 36): `forget` removes a user from every file under data_dir, every snapshot and the
SQLite online store, keeps the other users' features, leaves a tombstone that validation honours and an
audit record without ids. Works on a private copy of the session pipeline's data_dir."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from profile_features.catalogue import ERASURE_AUDIT, PROFILES, STUDENT, TOMBSTONES
from tests.support.repo import make_repo

pytestmark = [pytest.mark.spark, pytest.mark.feast]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _texts(root: Path):
    """(path, bytes) of every file under `root`, plus each Parquet file's decoded rows as JSON text
    (compressed pages would hide an id from a byte scan)."""
    for path in _files(root):
        data = path.read_bytes()
        yield path, data
        if path.suffix == ".parquet":
            rows = pq.read_table(path, partitioning=None).to_pylist()
            yield path, json.dumps(rows, default=str, ensure_ascii=False).encode("utf-8")


def _hits(root: Path, needles: list[str]) -> list[str]:
    encoded = [n.encode("utf-8") for n in needles]
    return sorted({f"{p.relative_to(root)}: {n!r}" for p, data in _texts(root) for n in encoded if n in data})


def _id_hits(root: Path, user_id: str) -> list[str]:
    """Whole-token occurrences of `user_id` ('u1' is not inside 'u10')."""
    token = re.compile(rb"(?<![0-9A-Za-z_])" + re.escape(user_id.encode()) + rb"(?![0-9A-Za-z_])")
    return sorted({str(p.relative_to(root)) for p, data in _texts(root) if token.search(data)})


def _unique_phrase(profiles: pd.DataFrame, user_id: str) -> str:
    """The longest sentence of the user's profile text that no other user's profile holds."""
    mine = profiles[profiles.user_id == user_id].profile_text
    others = "\n".join(profiles[profiles.user_id != user_id].profile_text)
    sentences = {s.strip() for text in mine for s in text.split(". ") if len(s.strip()) > 20}
    unique = sorted((s for s in sentences if s not in others), key=len, reverse=True)
    assert unique, f"no unique phrase in {user_id}'s profiles"
    return unique[0]


def _user_features(repo: Path) -> list[str]:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    views = [v for v in store.list_feature_views() if list(v.join_keys) == ["user_id"]]
    return [f"{v.name}:{f.name}" for v in views for f in v.features]


def _online(repo: Path, user_ids: list[str]) -> dict:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    rows = store.get_online_features(features=_user_features(repo), entity_rows=[{"user_id": u} for u in user_ids])
    return rows.to_dict()


def _online_row(online: dict, index: int) -> dict:
    return {k: values[index] for k, values in online.items()}


def _plant_leftovers(data: Path, profiles: pd.DataFrame, forgotten: str, kept: str, phrase: str) -> None:
    """What the small pipeline does not write but a real one may: profile cache entries, dead letters,
    rejects (JSON and malformed records), a run summary naming users, a killed job's staging folder."""
    import pyarrow as pa

    from profile_features import schemas
    from profile_features.profiles.tables import DEAD_LETTERS
    from profile_features.profiles.tables import PROFILE_CACHE as CACHE_SCHEMA

    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    hash_of = {u: profiles[profiles.user_id == u].history_hash.iloc[-1] for u in (forgotten, kept)}
    cache = [
        {"history_hash": hash_of[u], "key_generator": "llm", "key_model": "m", "key_prompt_version": "v",
         "profile_text": text, "generator": "llm", "model": "m", "prompt_version": "v", "status": "ok",
         "fallback_reason": None, "calls": 1, "tokens_in": 1, "tokens_out": 1, "run_id": "r", "created_at": now}
        for u, text in ((forgotten, f"{phrase}. Cached."), (kept, "Another user's cached profile."))
    ]  # fmt: skip
    (data / "profile_cache" / "parts").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(cache, schema=CACHE_SCHEMA), data / "profile_cache/parts/part-r-1.parquet")
    newest = max(p.name for p in (data / "histories").glob("run_date=*"))
    dead = [
        {"run_id": "r", "user_id": u, "history_hash": "h", "key_generator": "llm", "key_model": "m",
         "key_prompt_version": "v", "reason": "too_short", "detail": "", "output_text": text, "created_at": now}
        for u, text in ((forgotten, phrase), (kept, "Another user's rejected output."))
    ]  # fmt: skip
    (data / "profile_dead_letters" / newest).mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(dead, schema=DEAD_LETTERS), data / f"profile_dead_letters/{newest}/p.parquet")
    rejects = [
        {"table": "interactions", "source_file": "raw.csv", "reason": "unparseable timestamp",
         "record": json.dumps({"user_id": f" {forgotten}", "item_id": "i1", "timestamp": "x"})},
        {"table": "interactions", "source_file": "raw.csv", "reason": "malformed row", "record": f"{forgotten},i1,x,y"},
        {"table": "interactions", "source_file": "raw.csv", "reason": "unparseable timestamp",
         "record": json.dumps({"user_id": kept, "item_id": "i1", "timestamp": "x"})},
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rejects, schema=schemas.REJECTS), data / "rejects" / "part-planted.parquet")
    summary = {"job": "profiles", "refresh": {"unknown": [forgotten, "nobody"], "note": f"listed {forgotten}."}}
    (data / "runs" / "profiles-planted.json").write_text(json.dumps(summary))
    staging = data / "_staging" / "histories-killed"
    shutil.copytree(data / "histories" / newest, staging)


@pytest.fixture(scope="module")
def erased(module_tmp, pipeline_run, spark):
    """A copy of the pipeline's data_dir and a repo materialized from it; one user forgotten with the
    Python function, the ids file holding the id with invisible padding (normalised as validation does)."""
    from profile_features.erasure import forget_users
    from profile_features.pipeline import apply_and_materialize

    root = module_tmp / "forget"

    root.mkdir()
    data = root / "data"
    shutil.copytree(pipeline_run["data_dir"], data)
    config = pipeline_run["config"].model_copy(update={"data_dir": str(data)})
    repo = make_repo(root, data)
    apply_and_materialize(repo)
    profiles = pd.read_parquet(data / PROFILES.name)
    run_dates = profiles.run_date.astype(str)
    newest = profiles[run_dates == run_dates.max()]
    users = sorted(newest.user_id)
    forgotten, kept, later = users[3], users[4], users[5]
    phrase = _unique_phrase(profiles, forgotten)
    _plant_leftovers(data, profiles, forgotten, kept, phrase)
    online_db = repo / "online.db"
    assert forgotten.encode() in online_db.read_bytes()  # the scan below would find it
    assert _id_hits(data, forgotten)
    before = _online(repo, [kept, forgotten])
    result = forget_users(config, [f" {forgotten}\u200b"], repo=repo, spark=spark)
    after = _online(repo, [kept, forgotten])
    return {
        "config": config,
        "data": data,
        "root": root,
        "repo": repo,
        "forgotten": forgotten,
        "kept": kept,
        "later": later,
        "users": users,
        "phrase": phrase,
        "before": before,
        "after": after,
        "result": result,
    }


def test_no_trace_of_the_user_under_data_dir_or_in_the_online_store(erased):
    forgotten, phrase, data = erased["forgotten"], erased["phrase"], erased["data"]
    assert _id_hits(data, forgotten) == []
    assert _hits(data, [phrase]) == []
    online_files = list(erased["repo"].glob("online.db*"))
    assert online_files
    for path in online_files:
        raw = path.read_bytes()
        assert forgotten.encode() not in raw and phrase.encode() not in raw, path


def test_cache_dead_letters_rejects_summaries_and_scratch_lose_only_the_user(erased):
    data, kept, record = erased["data"], erased["kept"], erased["result"].record
    tables = record["tables"]
    assert tables["profile_cache"] == {"rows_removed": 1, "partitions_rewritten": ["parts"]}
    assert tables["profile_dead_letters"]["rows_removed"] == 1
    assert tables["rejects"]["rows_removed"] == 2
    assert "Another user's cached profile." in set(pd.read_parquet(data / "profile_cache" / "parts").profile_text)
    assert set(pd.read_parquet(data / "profile_dead_letters").user_id) == {kept}
    assert any(kept in r for r in pd.read_parquet(data / "rejects").record)
    assert record["files"]["rewritten"] == ["runs/profiles-planted.json"]
    summary = json.loads((data / "runs" / "profiles-planted.json").read_text())
    assert summary["refresh"]["unknown"][1] == "nobody" and summary["refresh"]["unknown"][0].startswith("forgotten:")
    assert "_staging/histories-killed" in record["scratch_deleted"]


def test_other_users_online_features_are_unchanged(erased):
    before, after = erased["before"], erased["after"]
    assert _online_row(after, 0) == _online_row(before, 0)
    assert any(v is not None for k, v in _online_row(before, 1).items() if k != "user_id")
    assert all(v is None for k, v in _online_row(after, 1).items() if k != "user_id")


def test_other_users_rows_stay_in_every_table(erased):
    data, kept = erased["data"], erased["kept"]
    record = erased["result"].record
    for name in ("histories", "user_stats", "profiles", "user_profile_embeddings", "user_semantic", "user_student"):
        frame = pd.read_parquet(data / name)
        assert kept in set(frame.user_id), name
        assert record["tables"][name]["rows_removed"] > 0, name


def test_audit_record_counts_without_ids(erased):
    data, forgotten = erased["data"], erased["forgotten"]
    record = erased["result"].record
    text = Path(erased["result"].audit_path).read_text()
    assert json.loads(text) == record
    assert forgotten not in text
    assert record["users"] == 1 and record["tombstone_version"] == 1 and record["tombstones_added"] == 1
    assert record["rows_removed"] == sum(t["rows_removed"] for t in record["tables"].values()) > 0
    assert record["tables"]["validated/interactions"]["partitions_rewritten"] == ["(whole table)"]
    assert record["online_store"]["store"] == "sqlite" and record["online_store"]["entities_deleted"] == 1
    tombstones = (data / TOMBSTONES.name / "v000001.json").read_text()
    assert forgotten not in tombstones and len(json.loads(tombstones)["hashes"]) == 1


def test_student_checkpoint_holds_no_user_id(erased):
    """The student has no per-user parameters (a user is their history): no id of any user is in it."""
    student = erased["data"] / STUDENT.name
    files = _files(student)
    assert any(p.suffix == ".safetensors" for p in files)
    for user_id in erased["users"]:
        assert not [p for p in files if user_id.encode() in p.read_bytes()], user_id


def test_rerun_changes_nothing(erased, spark):
    from profile_features.erasure import forget_users

    again = forget_users(erased["config"], [erased["forgotten"]], spark=spark)
    assert again.record["rows_removed"] == 0 and again.record["tombstones_added"] == 0
    assert again.tombstone_version == 1
    assert len(list((erased["data"] / ERASURE_AUDIT.name).glob("*.json"))) == 2


def test_validation_over_raw_inputs_keeps_the_user_out(erased, spark):
    from profile_features.spark.stages import run_validate
    from profile_features.validation_rules import normalize_ids

    config, data, forgotten = erased["config"], erased["data"], erased["forgotten"]
    raw = pd.read_parquet(config.inputs.interactions.path)
    listed = int((normalize_ids(raw.user_id.astype(str)) == forgotten).sum())
    assert listed > 0
    result = run_validate(spark, config)
    table = result.tables["interactions"]
    assert table["rejected_by_reason"]["forgotten user"] == listed
    assert table["read"] == table["accepted"] + table["rejected"]
    validated = pd.read_parquet(data / "validated" / "interactions")
    assert forgotten not in set(validated.user_id) and erased["kept"] in set(validated.user_id)
    rejects = pd.read_parquet(data / "rejects")
    mine = rejects[rejects.reason == "forgotten user"]
    assert len(mine) == listed
    hashed = {json.loads(r)["user_id"] for r in mine.record}
    assert len(hashed) == 1 and forgotten not in hashed and len(hashed.pop()) == 64
    assert _id_hits(data, forgotten) == []


def test_cli_forgets_a_user_from_an_id_file(erased, tmp_path, capsys):
    from profile_features.cli import main

    config, later, repo = erased["config"], erased["later"], erased["repo"]
    yaml_path = tmp_path / "job.yaml"
    yaml_path.write_text(json.dumps(config.model_dump(mode="json")))  # JSON is YAML
    ids = tmp_path / "users.csv"
    ids.write_text(f"user_id,reason\n{later},art. 17\n")
    # A refresh plan written outside data_dir (`refresh-plan --out`) names the user too.
    plan = tmp_path / "elsewhere" / "plan.parquet"
    plan.parent.mkdir()
    pd.DataFrame({"user_id": [later, erased["kept"]], "score": [0.9, 0.5]}).to_parquet(plan, index=False)
    assert _online_row(_online(repo, [later]), 0)["user_id"] == later
    command = ["forget", "--config", str(yaml_path), "--users", str(ids), "--repo", str(repo), "--file", str(plan)]
    assert main(command) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["users"] == 1 and printed["rows_removed"] > 0 and printed["tombstone_version"] == 2
    assert later not in json.dumps(printed)
    assert pd.read_parquet(plan).to_dict("records") == [{"user_id": erased["kept"], "score": 0.5}]
    assert json.loads(Path(printed["audit"]).read_text())["outside_files"] == {str(plan): 1}
    assert _id_hits(erased["data"], later) == []
    assert all(v is None for k, v in _online_row(_online(repo, [later]), 0).items() if k != "user_id")


USER_TABLES = (
    "validated/interactions",
    "histories",
    "user_stats",
    "profiles",
    "user_profile_embeddings",
    "user_semantic",
    "user_student",
)


def _copy(pipeline_run, target: Path):
    """A copy of the pipeline's data_dir without the exported encoders (no user data, most of the bytes)."""
    data = target / "data"
    shutil.copytree(pipeline_run["data_dir"], data, ignore=shutil.ignore_patterns("encoders"))
    return pipeline_run["config"].model_copy(update={"data_dir": str(data)}), data


def _rows(table: Path, without: str | None = None) -> list[str]:
    """Every row of the table (each tagged with its partition folder) as sorted JSON text."""
    rows = []
    for part in table.rglob("*.parquet"):
        relative = part.relative_to(table).parts
        if any(p.startswith(("_", ".")) for p in relative):
            continue
        for row in pq.read_table(part, partitioning=None).to_pylist():
            if without is None or row.get("user_id") != without:
                rows.append(json.dumps({**row, "_partition": relative[:-1]}, sort_keys=True, default=str))
    return sorted(rows)


class Stop(Exception):
    pass


def test_a_run_stopped_after_any_stage_is_finished_by_a_rerun(tmp_path, pipeline_run, spark):
    """Stopped after the tombstones, a table, the scratch and the files, each re-run goes further; the
    last one leaves every table exactly as the pipeline wrote it less the user's rows."""
    from profile_features.erasure import forget_users

    config, data = _copy(pipeline_run, tmp_path)
    forgotten = sorted(pd.read_parquet(data / "user_stats").user_id)[6]
    expected = {name: _rows(pipeline_run["data_dir"] / name, without=forgotten) for name in USER_TABLES}

    def stop_at(name):
        def step(done):
            if done == name:
                raise Stop(name)

        return step

    for stop in ("tombstoned", "histories", "user_student", "scratch", "files"):
        with pytest.raises(Stop):
            forget_users(config, [forgotten], spark=spark, step=stop_at(stop))
    final = forget_users(config, [forgotten], spark=spark)
    for name in USER_TABLES:
        assert _rows(data / name) == expected[name], name
    assert final.tombstone_version == 1 and final.record["rows_removed"] == 0  # the stopped runs did it all
    assert _id_hits(data, forgotten) == []


@pytest.mark.redis
def test_redis_online_store_forgets_the_user(tmp_path, pipeline_run, spark, redis_server):
    import redis

    from profile_features.erasure import forget_users
    from profile_features.pipeline import apply_and_materialize

    config, data = _copy(pipeline_run, tmp_path)
    host, port, db = redis_server["host"], redis_server["port"], 5  # a db of its own on the session's server
    client = redis.Redis(host=host, port=port, db=db)
    client.flushdb()
    repo = make_repo(tmp_path, data, online_store={"type": "redis", "connection_string": f"{host}:{port},db={db}"})
    apply_and_materialize(repo)
    users = sorted(pd.read_parquet(data / "user_stats").user_id)
    forgotten, kept = users[7], users[8]
    assert any(forgotten.encode() in key for key in client.scan_iter())
    before = _online(repo, [kept, forgotten])
    result = forget_users(config, [forgotten], repo=repo, spark=spark)
    assert result.online.store == "redis" and result.online.entities_deleted == 1
    for key in client.scan_iter():
        assert forgotten.encode() not in key
        assert not [v for v in client.hgetall(key).values() if forgotten.encode() in v]
    after = _online(repo, [kept, forgotten])
    assert _online_row(after, 0) == _online_row(before, 0)
    assert all(v is None for k, v in _online_row(after, 1).items() if k != "user_id")


KILLED_MID_COMMIT = """
import os, signal, sys
from profile_features.config import JobConfig, SparkConfig
from profile_features.erasure import forget_users
from profile_features.spark import commit
from profile_features.spark.session import build_spark

data_dir, user_id, victim = sys.argv[1:4]
original = commit.commit_directory

def killed_after_aside(fs, staging, target, lock, **kwargs):
    def step(name):
        if name == "aside" and target.rstrip("/").endswith(victim):
            os.kill(os.getpid(), signal.SIGKILL)  # the old partition moved aside, the new one not yet in
    return original(fs, staging, target, lock, **{**kwargs, "step": step})

commit.commit_directory = killed_after_aside
forget_users(JobConfig(data_dir=data_dir), [user_id], spark=build_spark(SparkConfig(master="local[1]")))
"""


def test_a_run_killed_mid_commit_is_finished_by_a_rerun(tmp_path, pipeline_run, spark):
    """SIGKILL between moving a partition aside and moving its new data in: the re-run repairs that
    commit (the dead writer's lock) and finishes; every table ends as the pipeline wrote it less the user."""
    import os
    import signal
    import subprocess
    import sys

    from profile_features.catalogue import partition_folder
    from profile_features.erasure import forget_users

    config, data = _copy(pipeline_run, tmp_path)
    forgotten = sorted(pd.read_parquet(data / "user_stats").user_id)[9]
    expected = {name: _rows(pipeline_run["data_dir"] / name, without=forgotten) for name in USER_TABLES}
    newest = max(p.name for p in (data / "user_semantic").glob("run_date=*"))
    victim = f"user_semantic/{newest}"
    assert newest == partition_folder(newest.split("=", 1)[1])
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_COMMIT)
    process = subprocess.Popen([sys.executable, str(script), str(data), forgotten, victim], start_new_session=True)
    try:
        assert process.wait(timeout=600) == -signal.SIGKILL
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its Spark JVM, started in its own session
        except ProcessLookupError:
            pass
    assert not (data / victim).exists() and list((data / "_staging").glob("user_semantic.lock"))
    forget_users(config, [forgotten], spark=spark)
    for name in USER_TABLES:
        assert _rows(data / name) == expected[name], name
    assert not list((data / "_staging").glob("*.lock"))
    assert _id_hits(data, forgotten) == []
