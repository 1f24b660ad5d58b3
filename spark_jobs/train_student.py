"""Train the distilled student on a snapshot (driver-side PyTorch; GPU when present).

    spark-submit --master local[*] spark_jobs/train_student.py --config configs/job.yaml \
        [--set student.config=configs/student.yaml --set history.cutoff=2026-05-01T00:00:00Z]

Uses the interactions strictly before the snapshot's cutoff and that snapshot's
profile vectors (no leakage); writes <data_dir>/student/run_date=<date>/.
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["train_student"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
