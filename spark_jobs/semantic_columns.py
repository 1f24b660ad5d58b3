"""Compressed dimensions (PCA) and cluster ids (k-means) of profile and item embeddings.

    spark-submit --master local[*] spark_jobs/semantic_columns.py --config configs/job.yaml \
        [--set semantic.components=16 --set semantic.clusters=16 --set semantic.refit=true]

Fits the transforms on the first snapshot (saved under <data_dir>/transforms with
provenance) and reuses them for later snapshots unless `semantic.refit` is set.
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["semantic_columns"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
