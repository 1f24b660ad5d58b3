"""Cut each user's last N interactions before the cutoff (plus user/item stats).

    spark-submit --master local[*] spark_jobs/build_histories.py --config configs/job.yaml \
        --set history.cutoff=2026-05-01T00:00:00Z

Without a cutoff the snapshot is cut at the current time. Writes the `run_date=`
partition of histories/, user_stats/ and item_stats/.
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["build_histories"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
