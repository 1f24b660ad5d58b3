"""Score every user of a snapshot with the distilled student.

    spark-submit --master local[*] spark_jobs/score_student.py --config configs/job.yaml \
        [--set student.checkpoint=/models/student/run_date=2026-05-01]

Writes `user_student`: student_embedding (the user representation),
student_profile_embedding (the predicted profile vector), profile_drift
(1 - cosine to the user's last LLM profile; null without one) per user. The
checkpoint loads once per executor Python worker. Train one with
`spark_jobs/train_student.py`.
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["score_student"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
