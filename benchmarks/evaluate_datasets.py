"""`profile-features evaluate --config` on every named dataset, as a new user would run it.

    .venv/bin/python benchmarks/evaluate_datasets.py                          # every dataset
    .venv/bin/python benchmarks/evaluate_datasets.py --datasets amazon-digital-music -- --no-two-tower
    .venv/bin/python benchmarks/evaluate_datasets.py --datasets sample-noisy --seeds 3

Each dataset is written as a CSV pair plus a job YAML under `work/datasets/<name>/` and
evaluated by the real CLI in its own process (`profile-features evaluate --config ...`),
so what runs is exactly what a user runs on their own two files. The report stays in
`work/evaluate-<name>/report/`; the figures that matter (slices, the recommended column
set, every check, NDCG@10 per model, variant and slice) go to
`benchmarks/results/evaluate-<name>.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

from profile_features.datasets.variants import DATASETS, load_dataset, write_csv_pair  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
ML100K = SHARED / "ml-100k"
# The real CSV pairs in the project's input format (shared/datasets/README.md), read where they lie.
REAL = ("amazon-digital-music", "amazon-office", "lastfm-tags")


def prepare(name: str, root: Path, ml100k: Path = ML100K, shared: Path = SHARED) -> Path:
    """Job YAML for `name` (a named dataset written as a CSV pair first; a real one read in place from `shared`)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    if name in REAL:
        inputs = {table: {"path": str(shared / name / f"{table}.csv")} for table in ("interactions", "items")}
    else:
        interactions, items = load_dataset(name, ml100k)
        inputs = write_csv_pair(interactions, items, folder).model_dump()
    config = folder / "job.yaml"
    config.write_text(yaml.safe_dump({"inputs": inputs}))
    return config


def condensed(report: dict, command: list[str], seconds: float) -> dict:
    def rows(keep) -> list[dict]:
        keys = ("model", "slice", "variant", "mean", "std", "seeds", "users", "lift")
        return [{k: row[k] for k in keys} for row in report["summary"] if keep(row)]

    summary = rows(lambda row: row["metric"] == "ndcg@10")
    recall = rows(lambda row: row["model"] == "two_tower" and row["metric"] == "recall@50")
    return {
        "command": " ".join(command),
        "wall_seconds": round(seconds),
        "context": report["context"],
        "slices": report["slices"],
        "recommendation": report["recommendation"],
        "two_tower_recommendation": report.get("two_tower_recommendation"),
        "checks": report["checks"],
        "check_counts": report.get("check_counts"),
        "all_checks_passed": report["all_checks_passed"],
        "phase_seconds": report["details"].get("phase_seconds"),
        "ndcg@10": summary,
        "two_tower_recall@50": recall,
        "control_comparisons": report.get("control_comparisons"),
        "lightgbm_params": report["details"].get("lightgbm_params"),
        "student_training": report["details"].get("student_training"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS + REAL, default=list(DATASETS + REAL))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workroot", type=Path, default=ROOT / "work")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--ml100k", type=Path, default=ML100K)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared datasets folder (the real ones)")
    parser.add_argument("extra", nargs="*", help="more `evaluate` arguments, after --")
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).with_name("profile-features")
    for name in args.datasets:
        config = prepare(name, args.workroot / "datasets", args.ml100k, args.shared)
        workdir = args.workroot / f"evaluate-{name}"
        command = [
            str(cli),
            "evaluate",
            "--config",
            str(config),
            "--workdir",
            str(workdir),
            "--seeds",
            str(args.seeds),
            *args.extra,
        ]
        print(f"=== {name}: {' '.join(command)}", flush=True)
        started = time.monotonic()
        subprocess.run(command, check=True)
        report = json.loads((workdir / "report" / "report.json").read_text())
        shown = [
            str(Path(c).relative_to(args.workroot.parent)) if c.startswith(str(args.workroot)) else c for c in command
        ]
        shown[0] = ".venv/bin/profile-features"
        out = args.results / f"evaluate-{name}.json"
        out.write_text(json.dumps(condensed(report, shown, time.monotonic() - started), indent=1))
        counts = report.get("check_counts", {})
        print(
            f"=== {name}: recommended {report['recommendation'] and report['recommendation']['variant']}; "
            f"checks: {counts} of {len(report['checks'])}; {out}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
