"""Write a textual profile per user history with the configured generator.

    spark-submit --master local[*] spark_jobs/generate_profiles.py --config configs/job.yaml
    spark-submit --conf spark.executorEnv.OPENAI_API_KEY="$OPENAI_API_KEY" \
        spark_jobs/generate_profiles.py --config configs/llm_openai.yaml

Reads the snapshot of `history.cutoff` (default: the newest histories partition).
LLM generators regenerate only users whose (history hash, prompt version, model) has
no profile in the cache; the run summary lands in `<data_dir>/runs/profiles-*.json`.

Before an LLM run, see what it would cost (users to generate vs cache hits, calls, prompt tokens
counted with the model's tokenizer where one answers, expected output tokens, and money when
`profile.pricing` is set); nothing is generated:

    spark-submit spark_jobs/generate_profiles.py --config configs/llm_openai.yaml --dry-run \
        --set profile.pricing.input_per_million=0.15 --set profile.pricing.output_per_million=0.60

Regenerate only the users of a refresh list (`profile-features refresh-plan`); everyone
else keeps their previous profile:

    spark-submit spark_jobs/generate_profiles.py --config configs/job.yaml \
        --set profile.only_users=/data/refresh/plan.parquet
"""

import dataclasses
import sys
from functools import partial

from profile_features.spark.entry import Needs, job_parser, run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    parser = job_parser(__doc__)
    parser.add_argument(
        "--dry-run", action="store_true", help="estimate users, calls, tokens and cost; generate nothing"
    )
    parser.add_argument("--sample", type=int, default=2000, help="dry run: histories whose tokens are counted")
    args, _ = parser.parse_known_args(argv)
    stage = STAGES["generate_profiles"]
    if args.dry_run:  # the same snapshot and plan, estimated instead of generated
        from profile_features.spark.profile_estimate import estimate_profiles

        estimate = partial(estimate_profiles, sample=args.sample)
        stage = dataclasses.replace(stage, runner=estimate, needs=Needs())
    return run_job(stage, __doc__, argv, parser)


if __name__ == "__main__":
    sys.exit(run_main(main))
