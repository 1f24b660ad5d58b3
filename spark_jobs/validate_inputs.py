"""Validate raw interactions and items; write accepted rows and a rejects table.

    spark-submit --master local[*] spark_jobs/validate_inputs.py --config configs/job.yaml

Fails with the file and column when a required column is missing; every row read
is either accepted or written to `<data_dir>/rejects` with its reason.
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["validate_inputs"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
