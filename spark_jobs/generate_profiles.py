"""Write a textual profile per user history with the configured generator.

    spark-submit --master local[*] spark_jobs/generate_profiles.py --config configs/job.yaml
    spark-submit --conf spark.executorEnv.OPENAI_API_KEY="$OPENAI_API_KEY" \
        spark_jobs/generate_profiles.py --config configs/llm_openai.yaml

Reads the snapshot of `history.cutoff` (default: the newest histories partition).
LLM generators regenerate only users whose (history hash, prompt version, model) has
no profile in the cache; the run summary lands in `<data_dir>/runs/profiles-*.json`.

Regenerate only the users of a refresh list (`profile-features refresh-plan`); everyone
else keeps their previous profile:

    spark-submit spark_jobs/generate_profiles.py --config configs/job.yaml \
        --set profile.only_users=/data/refresh/plan.parquet
"""

import sys

from profile_features.spark.entry import run_job
from profile_features.spark.profile_job import run_profiles


def main(argv=None):
    return run_job(run_profiles, __doc__, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
