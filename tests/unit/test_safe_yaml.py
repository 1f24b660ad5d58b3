"""Both YAML config loaders refuse alias bombs in milliseconds; ordinary aliases still load."""

from __future__ import annotations

import time

import pytest

from profile_features.config import load_config
from profile_features.safe_yaml import load_yaml
from profile_features.student.config import load_student_config


def _bomb(levels: int = 9, fan_out: int = 9) -> str:
    """A "billion laughs": each level lists the previous one `fan_out` times (9**9 leaves, ~350 bytes)."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * fan_out) + "]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", [load_config, load_student_config], ids=["job", "student"])
def test_an_alias_bomb_is_refused_in_milliseconds(tmp_path, loader):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert path.stat().st_size < 1500
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.yaml.*alias"):
        loader(path)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("loader", [load_config, load_student_config], ids=["job", "student"])
def test_a_recursive_alias_is_refused(tmp_path, loader):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(ValueError, match=r"loop\.yaml.*recursive alias"):
        loader(path)


def test_ordinary_anchors_and_merge_keys_still_load():
    text = "base: &base {x: 1, y: [1, 2]}\nother:\n  <<: *base\n  z: 3\nsame: *base\n"
    assert load_yaml(text) == {
        "base": {"x": 1, "y": [1, 2]},
        "other": {"x": 1, "y": [1, 2], "z": 3},
        "same": {"x": 1, "y": [1, 2]},
    }
    assert load_yaml("") is None and load_yaml("a: 1") == {"a": 1}
    wide = "items: [" + ", ".join(str(i) for i in range(5000)) + "]"  # a large plain list is no bomb
    assert len(load_yaml(wide)["items"]) == 5000


def test_every_other_yaml_door_refuses_a_bomb_too(tmp_path):
    """The Feast settings file, a job `--set` value and a drift `--threshold` value read YAML as well."""
    from profile_features.feast.settings import load_feast_settings
    from profile_features.freshness_commands import _settings

    settings = tmp_path / "profile_features.yaml"
    settings.write_text(_bomb())
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"profile_features\.yaml.*alias"):
        load_feast_settings(settings)
    flow = "{" + _bomb().strip().replace("\n", ", ") + "}"  # the same bomb as one flow mapping
    with pytest.raises(ValueError, match=r"--set history\.max_length.*alias"):
        load_config(None, [f"history.max_length={flow}"])
    with pytest.raises(ValueError, match=r"--threshold psi.*alias"):
        _settings([f"psi={flow}"])
    assert time.perf_counter() - started < 1.5
