"""Embed the snapshot's profiles and the catalogue's item texts with sentence-transformers.

    spark-submit --master local[*] spark_jobs/embed_texts.py --config configs/job.yaml

The encoder loads once per executor Python worker; `embedding.model_path` points at
a local model folder (default: the packaged all-MiniLM-L6-v2).
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["embed_texts"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
