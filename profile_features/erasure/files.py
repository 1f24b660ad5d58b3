"""Files under `data_dir` that are not Parquet tables but may name a user: run summaries and any other
JSON or text a job or a person left there.

- `*.json` / `*.jsonl`: rewritten (atomically) with every string that is a forgotten id (a whole value
  or a dict key) replaced by `forgotten:<hash prefix>`; inside longer strings an id is replaced as a
  token only when it has a letter and 4+ characters (a numeric id such as "16" would hit dates and
  counts). Only files that change are rewritten; counts stay.
- other text files (`.csv`, `.tsv`, `.txt`) with a field (split on , tab ; | and spaces) equal to an
  id: deleted (exports and reports; rewriting formats we do not own would be guesswork).
- Not scanned: Parquet (rewritten by `tables.py`) and the artifacts that hold no user id (encoders,
  transforms, the student checkpoint: tested), whose JSON a replacement would corrupt (a tokenizer's
  vocabulary holds short numbers); the tombstones and audit records (hashes and counts only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from profile_features import storage
from profile_features.catalogue import ENCODERS, ERASURE_AUDIT, STUDENT, TOMBSTONES, TRANSFORMS, DataDir

__all__ = ["FileResult", "IdMatcher", "scrub_value", "scrub_files"]

REWRITTEN = (".json", ".jsonl")
DELETED = (".csv", ".tsv", ".txt")
_SKIPPED = tuple(t.name for t in (ENCODERS, TRANSFORMS, STUDENT, TOMBSTONES, ERASURE_AUDIT))
_FIELDS = re.compile(r"[,\t;|\s\"']+")


@dataclass
class FileResult:
    rewritten: list[str] = field(default_factory=list)  # paths relative to data_dir
    deleted: list[str] = field(default_factory=list)


class IdMatcher:
    """Whole-value matches for every id; token matches inside text for the distinctive ones."""

    def __init__(self, user_ids: list[str], replace: Callable[[str], str]):
        self.ids, self.replace = frozenset(user_ids), replace
        distinctive = sorted((u for u in user_ids if len(u) >= 4 and not u.isdigit()), key=len, reverse=True)
        alternatives = "|".join(re.escape(u) for u in distinctive)
        self.token = re.compile(rf"(?<![0-9A-Za-z_])(?:{alternatives})(?![0-9A-Za-z_])") if distinctive else None

    def text(self, value: str) -> str:
        if value in self.ids:
            return self.replace(value)
        return self.token.sub(lambda m: self.replace(m.group(0)), value) if self.token else value

    def in_fields(self, text: str) -> bool:
        return any(f in self.ids for f in _FIELDS.split(text))


def scrub_value(value, matcher: IdMatcher):
    """`value` (parsed JSON) with the ids in its strings and keys replaced."""
    if isinstance(value, str):
        return matcher.text(value)
    if isinstance(value, list):
        return [scrub_value(v, matcher) for v in value]
    if isinstance(value, dict):
        return {scrub_value(k, matcher): scrub_value(v, matcher) for k, v in value.items()}
    return value


def _files_under(root: str) -> list[str]:
    from pyarrow import fs

    filesystem, path = storage.filesystem(root)
    infos = filesystem.get_file_info(fs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True))
    base = path.rstrip("/")
    return sorted(i.path[len(base) + 1 :] for i in infos if i.type == fs.FileType.File)


def _scrubbed_json(text: str, matcher: IdMatcher, lines: bool) -> str | None:
    """The text with the ids replaced, or None when it is not JSON (JSON Lines when `lines`)."""
    try:
        if not lines:
            return json.dumps(scrub_value(json.loads(text), matcher), indent=2)
        rows = [scrub_value(json.loads(line), matcher) for line in text.splitlines() if line.strip()]
        return "".join(json.dumps(r) + "\n" for r in rows)
    except ValueError:
        return None


def scrub_files(data_dir: str, user_ids: list[str], replace: Callable[[str], str]) -> FileResult:
    """Rewrite or delete the JSON/text files under `data_dir` that name a forgotten id (module doc)."""
    result = FileResult()
    if not user_ids:
        return result
    matcher = IdMatcher(user_ids, replace)
    root = DataDir(data_dir).data_dir
    for relative in _files_under(root):
        lower = relative.lower()
        if relative.split("/", 1)[0] in _SKIPPED or not lower.endswith(REWRITTEN + DELETED):
            continue
        path = storage.join(root, relative)
        text = storage.read_bytes(path).decode("utf-8", errors="replace")
        if lower.endswith(REWRITTEN):
            scrubbed = _scrubbed_json(text, matcher, lines=lower.endswith(".jsonl"))
            if scrubbed is not None:
                if _changed(text, scrubbed, lower.endswith(".jsonl")):
                    storage.write_text(path, scrubbed)
                    result.rewritten.append(relative)
                continue
        if matcher.in_fields(text):  # not JSON we can parse, or a text export: the file goes
            storage.delete(path)
            result.deleted.append(relative)
    return result


def _changed(before: str, after: str, lines: bool) -> bool:
    """Whether the scrub changed any value (the text may differ in layout only)."""
    if lines:
        return [json.loads(x) for x in before.splitlines() if x.strip()] != [json.loads(x) for x in after.splitlines()]
    return json.loads(before) != json.loads(after)
