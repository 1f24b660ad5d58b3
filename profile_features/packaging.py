"""The package as one zip for `spark-submit --py-files`: `python -m profile_features.packaging OUT.zip`.

The repository keeps `student/` and `spark_jobs/` as top-level folders, installed as
`profile_features.student` and `profile_features.spark_jobs` (setup.cfg `package_dir`), so zipping the
folders as they lie would put them at the wrong import path. This writes every module and data file
where Python imports it from, whether the package is installed normally or in editable mode, without
importing the student (torch) to find it.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

__all__ = ["MAPPED", "package_zip"]

MAPPED = ("profile_features.student", "profile_features.spark_jobs")
_SKIPPED = ("__pycache__",)
_SUFFIXES = (".py", ".properties")  # modules, and the JVM logging profile the session applies


def _folder(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{name} is not importable here: install the package (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def package_zip(out: str | Path) -> Path:
    """Write the zip at `out` (profile_features/..., the mapped folders at their import paths); its path."""
    roots = {"profile_features": _folder("profile_features")} | {name: _folder(name) for name in MAPPED}
    members: dict[str, Path] = {}
    for name, folder in roots.items():
        prefix = Path(*name.split("."))
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and path.suffix in _SUFFIXES and not set(relative.parts) & set(_SKIPPED):
                members.setdefault(str(prefix / relative), path)
    out = Path(out)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in sorted(members.items()):
            archive.write(path, arcname)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m profile_features.packaging OUT.zip")
    print(package_zip(sys.argv[1]))
