"""Plot of benchmarks/results/scale.json: seconds per stage against interactions (log-log).

.venv/bin/python benchmarks/plot_scale.py      # writes benchmarks/results/scale.png
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

data = json.loads((RESULTS / "scale.json").read_text())
sizes = [s["interactions"] for s in data["sizes"]]
fig, ax = plt.subplots(figsize=(7, 4.5))
for stage in data["sizes"][0]["stages"]:
    ax.plot(sizes, [s["stages"][stage]["seconds"] for s in data["sizes"]], marker="o", label=stage)
first = data["sizes"][0]["stages"]["train_student"]["seconds"]
ax.plot(sizes, [first * n / sizes[0] for n in sizes], "k:", label="linear (from train_student)")
ax.set(xscale="log", yscale="log", xlabel="interactions (users and items grow 4x per size)", ylabel="seconds")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(RESULTS / "scale.png", dpi=110)
