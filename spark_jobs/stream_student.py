"""Keep the student's user features fresh: new interaction events -> Feast online store within seconds.

    spark-submit --master local[2] spark_jobs/stream_student.py --config configs/job.yaml \
        --set stream.source.path=/data/events/incoming

A Spark Structured Streaming job. Each micro-batch validates the new events with the batch rules
(rejects written aside under <data_dir>/stream/rejects), rebuilds each touched user's history from the
newest snapshot plus everything streamed since, re-scores them with that snapshot's student checkpoint,
appends the rows to `user_student` (partition run_date=stream, so training sets built later see what was
served) and writes them to the online store through Feast, newest event time wins. Users whose predicted
profile drifted from their LLM profile are queued in <data_dir>/stream/profile_refresh_queue for
`generate_profiles --set profile.only_users=...`; the stream never calls an LLM.
New catalogue items (`--set stream.items_source.path=/data/items/incoming`) run as a second query: each gets
its text embedding, semantic columns and content-only student vector (offline in the item tables' stream
partition, online in item_text / item_semantic / item_student) without a retrain.
Kill it at any time: a restart resumes from its checkpoint, losing no event and applying none twice.
With `--set stream.available_now=true` it processes what has arrived and stops.
Kafka: `stream.source.format: kafka` with the options `kafka.bootstrap.servers` and `subscribe`, and
`--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<your Spark version>` on the spark-submit line.
"""

import sys

from profile_features.spark.entry import run_job, run_main
from profile_features.spark.registry import STAGES


def main(argv=None):
    return run_job(STAGES["stream_student"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
