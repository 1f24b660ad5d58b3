import json

import numpy as np
import pandas as pd
import pytest
import torch

from profile_features.student.checkpoint import DataStats, load_checkpoint, save_checkpoint
from profile_features.student.scoring import OUTPUT_COLUMNS, load_student, score_users


@pytest.fixture(scope="module")
def ckpt(trained, module_tmp):
    result, data = trained
    path = module_tmp / "student"
    stats = DataStats(
        len(data.users),
        len(data.item_index),
        sum(map(len, data.sequences)),
        data.profile_dim,
        int(data.has_profile.sum()),
    )
    ckpt_id = save_checkpoint(path, result.model, data.item_index, stats)
    return path, ckpt_id


def _histories(cyclic_data, profiles=True):
    _, seqs, _, profs = cyclic_data
    users = sorted(seqs)[:6]
    df = pd.DataFrame({"user_id": users, "item_ids": [seqs[u] for u in users]})
    if profiles:
        df["profile_embedding"] = [profs[u] for u in users]
    return df


def test_checkpoint_round_trip_gives_identical_outputs(trained, ckpt, cyclic_data):
    result, data = trained
    path, ckpt_id = ckpt
    loaded = load_checkpoint(path)
    assert loaded.checkpoint_id == ckpt_id and ckpt_id.startswith("student-")
    assert loaded.item_index == data.item_index
    for key, value in result.model.state_dict().items():
        assert torch.equal(value.cpu(), loaded.model.state_dict()[key]), key
    hist = _histories(cyclic_data)
    from profile_features.student.checkpoint import LoadedStudent

    in_memory = LoadedStudent(result.model.eval(), result.model.cfg, data.item_index, loaded.stats, ckpt_id, "")
    a, b = score_users(hist, in_memory), score_users(hist, loaded)
    for col in ("student_embedding", "student_profile_embedding"):
        np.testing.assert_array_equal(np.stack(a[col]), np.stack(b[col]))
    np.testing.assert_array_equal(a["profile_drift"], b["profile_drift"])


def test_checkpoint_is_json_plus_safetensors_and_checked(ckpt, tmp_path):
    path, ckpt_id = ckpt
    assert sorted(p.name for p in path.iterdir()) == ["CURRENT.json", "versions"]
    assert json.loads((path / "CURRENT.json").read_text()) == {"checkpoint_id": ckpt_id}
    path = path / "versions" / ckpt_id
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "student.json"]
    manifest = json.loads((path / "student.json").read_text())
    assert manifest["config"]["name"] == "student" and len(manifest["item_ids"]) == 24
    assert manifest["stats"]["profile_dim"] == 8
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "student.json").write_text((path / "student.json").read_text())
    (bad / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="sha256"):
        load_checkpoint(bad)


def test_load_student_is_cached(ckpt):
    path, _ = ckpt
    assert load_student(path) is load_student(str(path))


def test_scoring_schema_and_row_count(ckpt, cyclic_data):
    student = load_student(ckpt[0])
    hist = _histories(cyclic_data)
    out = score_users(hist, student)
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == len(hist) and list(out["user_id"]) == list(hist["user_id"])
    assert all(v.dtype == np.float32 and v.shape == (32,) for v in out["student_embedding"])
    assert all(v.dtype == np.float32 and v.shape == (8,) for v in out["student_profile_embedding"])
    assert out["profile_drift"].between(0, 2).all()
    assert not out["student_fallback"].any()
    assert (out["student_checkpoint_id"] == student.checkpoint_id).all()
    assert (out["student_history_len"] == 20).all()  # capped at max_len


def test_no_profile_column_or_null_profile_gives_null_drift(ckpt, cyclic_data):
    student = load_student(ckpt[0])
    out = score_users(_histories(cyclic_data, profiles=False), student)
    assert out["profile_drift"].isna().all() and len(out) == 6
    hist = _histories(cyclic_data)
    hist.loc[1, "profile_embedding"] = None
    hist.at[2, "profile_embedding"] = []
    out = score_users(hist, student)
    assert out["profile_drift"].isna().tolist() == [False, True, True, False, False, False]


def test_single_interaction_unknown_items_and_unknown_users(ckpt):
    student = load_student(ckpt[0])
    hist = pd.DataFrame(
        {
            "user_id": ["single", "mixed", "all_unknown", "empty", "new_user"],
            "item_ids": [["i3"], ["nope", "i3", "zzz"], ["nope", "zzz"], [], ["i5", "i6", "i7"]],
            "profile_embedding": [np.ones(8, np.float32)] * 5,
        }
    )
    out = score_users(hist, student).set_index("user_id")
    assert out["student_history_len"].to_dict() == {
        "single": 1,
        "mixed": 1,
        "all_unknown": 0,
        "empty": 0,
        "new_user": 3,
    }
    assert out["student_fallback"].to_dict() == {
        "single": False,
        "mixed": False,
        "all_unknown": True,
        "empty": True,
        "new_user": False,
    }
    # Unknown items are skipped: "mixed" is scored exactly like "single".
    np.testing.assert_array_equal(out.loc["single", "student_embedding"], out.loc["mixed", "student_embedding"])
    # Fallback rows carry the training-population means and no drift.
    np.testing.assert_allclose(out.loc["empty", "student_embedding"], student.model.fallback_state.numpy())
    np.testing.assert_allclose(out.loc["empty", "student_profile_embedding"], student.model.fallback_profile.numpy())
    assert np.isnan(out.loc["empty", "profile_drift"]) and np.isfinite(out.loc["single", "profile_drift"])
    # A user never seen in training but with known items is scored from the items (inductive).
    assert not np.allclose(out.loc["new_user", "student_embedding"], out.loc["empty", "student_embedding"])
    # The next item of a single-interaction user is still the determined one.
    scores = student.model.next_item_logits(torch.as_tensor(out.loc["single", "student_embedding"]))
    assert student.item_index.item_ids[int(scores.argmax())] == "i4"


def test_wrong_profile_width_is_an_error(ckpt):
    student = load_student(ckpt[0])
    hist = pd.DataFrame({"user_id": ["a"], "item_ids": [["i1"]], "profile_embedding": [np.ones(5, np.float32)]})
    with pytest.raises(ValueError, match="width"):
        score_users(hist, student)


def test_empty_batch(ckpt):
    out = score_users(pd.DataFrame({"user_id": [], "item_ids": []}), load_student(ckpt[0]))
    assert list(out.columns) == OUTPUT_COLUMNS and len(out) == 0


def test_batch_scoring_equals_one_user_at_a_time(ckpt):
    student = load_student(ckpt[0])
    hist = pd.DataFrame({"user_id": list("abcd"), "item_ids": [["i1"] * 3, ["i2", "i9"], ["i7"] * 25, ["i4"]]})
    together = score_users(hist, student, batch_size=3)
    alone = pd.concat([score_users(hist.iloc[[i]], student) for i in range(4)], ignore_index=True)
    np.testing.assert_allclose(np.stack(together["student_embedding"]), np.stack(alone["student_embedding"]), atol=1e-5)
    np.testing.assert_allclose(
        np.stack(together["student_profile_embedding"]), np.stack(alone["student_profile_embedding"]), atol=1e-5
    )


@pytest.mark.parametrize("dies_writing", ["model.safetensors", "student.json", "CURRENT.json"])
def test_a_save_killed_at_any_file_leaves_the_previous_checkpoint_in_force(trained, ckpt, tmp_path, dies_writing):
    import copy
    import shutil

    from profile_features import storage
    from profile_features.student.checkpoint import checkpoint_location

    result, data = trained
    path, ckpt_id = ckpt
    out = tmp_path / "student"
    shutil.copytree(path, out)
    changed = copy.deepcopy(result.model)
    with torch.no_grad():
        next(changed.parameters()).add_(1.0)  # other weights: another checkpoint id
    real_write = storage.write_bytes

    def dying(uri, payload):
        if str(uri).endswith(dies_writing):
            raise KeyboardInterrupt("killed")  # not an Exception: nothing may catch and carry on
        return real_write(uri, payload)

    stats = load_checkpoint(out).stats
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage, "write_bytes", dying)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(out, changed, data.item_index, stats)
    assert load_checkpoint(out).checkpoint_id == ckpt_id
    assert checkpoint_location(out).endswith(ckpt_id)
    newer = save_checkpoint(out, changed, data.item_index, stats)  # the next save succeeds and takes over
    assert newer != ckpt_id and load_checkpoint(out).checkpoint_id == newer


def _copy(ckpt, tmp_path):
    import shutil

    path, ckpt_id = ckpt
    out = tmp_path / "student"
    shutil.copytree(path, out)
    return out, out / "versions" / ckpt_id


@pytest.mark.parametrize("pointer", ["../../elsewhere", "/tmp", "..", "a/b", "", 7, None])
def test_current_json_cannot_point_outside_the_checkpoint_folder(ckpt, tmp_path, pointer):
    import shutil

    out, version = _copy(ckpt, tmp_path)
    shutil.copytree(version, tmp_path / "elsewhere")  # a loadable checkpoint outside `out`
    (out / "CURRENT.json").write_text(json.dumps({"checkpoint_id": pointer}))
    with pytest.raises(ValueError, match="CURRENT.json: checkpoint_id .* is not a checkpoint version name"):
        load_checkpoint(out)
    (out / "CURRENT.json").write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(ValueError, match="CURRENT.json"):
        load_checkpoint(out)


def _tamper(version, change) -> None:
    manifest = json.loads((version / "student.json").read_text())
    change(manifest)
    (version / "student.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "field, value",
    [
        ("text_dim", 48_000_000_000),  # 24 items x 48e9 floats: 4.6 TB asked for before any check, today
        ("profile_dim", 10**12),
        ("config", "huge hidden size"),
    ],
)
def test_a_manifest_cannot_ask_for_a_huge_allocation(ckpt, tmp_path, field, value):
    out, version = _copy(ckpt, tmp_path)

    def change(manifest):
        if field == "config":
            manifest["config"]["body"]["hidden_size"] = 2**31
        else:
            manifest[field] = value

    _tamper(version, change)
    with pytest.raises(ValueError, match=r"student\.json: (tensor|weights and manifest)"):
        load_checkpoint(out)


def test_manifest_item_ids_are_distinct_and_match_the_counts(ckpt, tmp_path):
    out, version = _copy(ckpt, tmp_path)
    _tamper(version, lambda m: m["item_ids"].__setitem__(1, m["item_ids"][0]))
    with pytest.raises(ValueError, match="listed more than once"):
        load_checkpoint(out)
    out2, version2 = _copy(ckpt, tmp_path / "b")
    _tamper(version2, lambda m: m.update(num_items=m["num_items"] + 1))
    with pytest.raises(ValueError, match="24 item_ids for num_items=25"):
        load_checkpoint(out2)
    _tamper(version2, lambda m: m.update(num_items=24, item_ids=m["item_ids"] + ["extra"]))
    with pytest.raises(ValueError, match="25 item_ids for num_items=24"):
        load_checkpoint(out2)


def test_a_weights_header_that_does_not_fit_the_file_is_refused(ckpt, tmp_path):
    import hashlib
    import struct

    out, version = _copy(ckpt, tmp_path)
    raw = (version / "model.safetensors").read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] += 10**12  # claims bytes past the end of the file
    encoded = json.dumps(header).encode()
    forged = struct.pack("<Q", len(encoded)) + encoded + raw[8 + length :]
    (version / "model.safetensors").write_bytes(forged)
    _tamper(version, lambda m: m.update(weights_sha256=hashlib.sha256(forged).hexdigest()))
    with pytest.raises(ValueError, match="does not fit the file"):
        load_checkpoint(out)
