"""Compressed dimensions (PCA) and cluster ids (k-means) of profile and item embeddings.

    spark-submit --master local[*] spark_jobs/semantic_columns.py --config configs/job.yaml \
        [--set semantic.components=16 --set semantic.clusters=16 --set semantic.refit=true]

Fits the transforms on the first snapshot (saved under <data_dir>/transforms with
provenance) and reuses them for later snapshots unless `semantic.refit` is set.
"""

import sys

from profile_features.spark.entry import Needs, run_job, run_main
from profile_features.spark.semantic_job import run_semantic_columns


def main(argv=None):
    return run_job(run_semantic_columns, __doc__, argv, needs=Needs(semantic=True))


if __name__ == "__main__":
    sys.exit(run_main(main))
