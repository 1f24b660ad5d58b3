"""evaluate's wall time per phase, before and after a change, from two `evaluate_datasets.py` results.

    .venv/bin/python benchmarks/evaluate_speed.py --name ml-100k \
        --before /tmp/speed/ml100k-before.json --before-rev 35113f8 \
        --after benchmarks/results/evaluate-ml-100k.json --after-rev HEAD

Both runs must come from the same machine in the same state (2 cores, nothing beside them): the
ratio is what is compared. The figures are merged into `benchmarks/results/evaluate_speed.json`
under `--name`, one entry per dataset.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate_speed.json"


def summary(result: dict, rev: str) -> dict:
    return {
        "rev": rev,
        "command": result["command"],
        "wall_seconds": result["wall_seconds"],
        "phase_seconds": result.get("phase_seconds", {}),
        "recommendation": (result.get("recommendation") or {}).get("variant"),
        "check_counts": result.get("check_counts"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the dataset's name (its key in the JSON)")
    parser.add_argument("--before", type=Path, required=True, help="evaluate-<name>.json of the earlier code")
    parser.add_argument("--before-rev", required=True, help="the commit that earlier run was made at")
    parser.add_argument("--after", type=Path, required=True, help="evaluate-<name>.json of the current code")
    parser.add_argument("--after-rev", required=True, help="the commit the current run was made at")
    args = parser.parse_args()
    before = summary(json.loads(args.before.read_text()), args.before_rev)
    after = summary(json.loads(args.after.read_text()), args.after_rev)
    entry = {"before": before, "after": after, "wall_ratio": round(after["wall_seconds"] / before["wall_seconds"], 3)}
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged[args.name] = entry
    RESULTS.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    print(f"{args.name}: {before['wall_seconds']} s -> {after['wall_seconds']} s (x{entry['wall_ratio']})")
    for phase in dict.fromkeys([*before["phase_seconds"], *after["phase_seconds"]]):
        print(f"  {phase}: {before['phase_seconds'].get(phase, '-')} -> {after['phase_seconds'].get(phase, '-')}")


if __name__ == "__main__":
    main()
