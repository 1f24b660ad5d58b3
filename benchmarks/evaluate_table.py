"""BENCHMARKS.md's evaluate table, generated from `benchmarks/results/evaluate-*.json`, before and after.

    .venv/bin/python benchmarks/evaluate_table.py --before fb33b19 --write BENCHMARKS.md

"Before" is each dataset's JSON as committed at `--before` (read with `git show`), "after" the file in
the working tree. With `--write` the table replaces the lines between the two markers in the file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path("benchmarks/results")
START, END = "<!-- evaluate-table:start -->", "<!-- evaluate-table:end -->"


def committed(rev: str, path: Path) -> dict | None:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_lift(result: dict, variant: str) -> str:
    """The recommended set's test lift over `none` on every test user, with its check's interval if any."""
    if variant in ("none", "", None):
        return "-"
    check = next(
        (c for c in result.get("checks", []) if c.get("variant") == variant and c.get("baseline") == "none"), None
    )
    if check and "low" in check:
        return f"{check['lift']:+.1%} [{check['low']:+.4f}, {check['high']:+.4f}] {check.get('outcome', '')}"
    row = next(
        (
            r
            for r in result.get("ndcg@10", [])
            if r.get("model") == "lightgbm" and r.get("variant") == variant and r.get("slice") == "all"
        ),
        None,
    )
    return f"{row['lift']:+.1%} (no interval)" if row else "?"


def checks(result: dict) -> str:
    counts = result.get("check_counts")
    if counts:
        return f"{counts['passed']} passed, {counts['failed']} failed, {counts['inconclusive']} inconclusive"
    passed = sum(bool(c.get("passed")) for c in result.get("checks", []))
    return f"{passed} of {len(result.get('checks', []))} 'passed' (no power test)"


def phases(result: dict) -> str:
    found = result.get("phase_seconds") or {}
    return ", ".join(f"{name.split(' (')[0]} {seconds:.0f}" for name, seconds in found.items()) or "-"


def row(name: str, when: str, result: dict | None) -> str:
    if result is None:
        return f"| {name} | {when} | (not run) | | | | |"
    chosen = result["recommendation"]["variant"]
    users = result.get("slices", {}).get("all", "?")
    cells = [f"{name} ({users} test users)", when, f"`{chosen}`", test_lift(result, chosen), checks(result)]
    cells += [f"{result.get('wall_seconds', 0):,.0f} s", phases(result)]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(before_rev: str) -> str:
    lines = [
        "| dataset | run | recommended | its test lift over none (95% interval) | checks | wall | phases (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / RESULTS).glob("evaluate-*.json")):
        name = path.stem.removeprefix("evaluate-")
        after = json.loads(path.read_text())
        before = committed(before_rev, RESULTS / path.name)
        if before is not None and before != after:
            lines.append(row(name, f"before ({before_rev})", before))
        protocol = "current" if "check_counts" in after else "current file, run before issue 30's protocol"
        lines.append(row(name, protocol, after))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="fb33b19", help="git revision whose JSON files are 'before'")
    parser.add_argument("--write", type=Path, default=None, help="replace the table between the markers here")
    args = parser.parse_args(argv)
    text = table(args.before)
    if args.write:
        document = args.write.read_text()
        if START not in document or END not in document:
            raise SystemExit(f"{args.write}: add the markers {START} and {END} where the table goes")
        head, rest = document.split(START, 1)
        args.write.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
