"""Plan which users' LLM profiles to regenerate first, within a budget, on the cluster.

    spark-submit spark_jobs/refresh_plan.py --config configs/job.yaml --budget 100000 \
        --out s3a://bucket/pf/plans/2026-05-01.parquet

Reads the newest `histories` run (or `--run-date`) under the config's data_dir with the
profiles and student runs at or before it; the joins and scores run on the executors and
only the selected users (at most the budget) reach the driver. Write the list as .parquet
or .csv and pass it to the profile job as `profile.only_users`. Same as
`profile-features refresh-plan`, under spark-submit's master and settings.
"""

import sys

from profile_features.freshness.refresh_plan import write_plan
from profile_features.freshness_commands import add_plan_arguments
from profile_features.spark.entry import job_parser, run_job, run_main
from profile_features.spark.refresh_plan_job import build_refresh_plan


def main(argv=None):
    parser = job_parser(__doc__)
    add_plan_arguments(parser)
    args, _ = parser.parse_known_args(argv)

    def plan(spark, config):
        selected, summary = build_refresh_plan(
            config.data_dir, args.budget, args.budget_fraction, args.run_date, args.min_drift, spark=spark
        )
        summary["output"] = str(write_plan(selected, args.out))
        return summary

    return run_job(plan, __doc__, argv, parser)


if __name__ == "__main__":
    sys.exit(run_main(main))
