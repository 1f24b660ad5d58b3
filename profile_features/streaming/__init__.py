"""The streaming student refresh: new interaction events -> fresh student rows in Feast within seconds.

A Spark Structured Streaming query (`job.run_stream`) reads events as they land (`source`), and each
micro-batch (`micro_batch.process`) validates them with the batch rules, rebuilds the touched users'
recent histories from the newest snapshot plus everything streamed since (`histories`), re-scores them
with the snapshot's student checkpoint, appends the rows offline and writes them to the online store
through Feast (`online`), and queues users whose predicted profile drifted for the LLM stage
(`refresh_queue`). Every output of micro-batch N is a file named after N, rewritten whole when Spark
replays N after a crash, and histories are recomputed from the deduplicated events: so a replay never
applies an event twice, and a restart loses none.
"""
