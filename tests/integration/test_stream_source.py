"""The event stream reads a CSV file as the batch stage reads it (issue 37: "the same validation rules as the batch
stage"): same rows, same raw text, same malformed rows, whatever the file's quoting and line ends; so an event
gets the same verdict whether it arrives in a file drop or in the nightly input."""

from __future__ import annotations

import pytest

from profile_features.config import StreamSource, TableInput
from profile_features.spark.io import read_input
from profile_features.streaming.source import read_event_stream
from profile_features.validation import INTERACTION_OPTIONAL, INTERACTION_REQUIRED, MALFORMED

pytestmark = pytest.mark.spark

COLUMNS = [*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL, MALFORMED]

FILES = {
    # a quoted field across lines: one row (rejected later for its line break), not two malformed halves
    "quoted-line-break": 'user_id,item_id,timestamp\nu1,"i1\nsecond line",1700000000\nu2,i2,1700000001\n',
    "crlf": 'user_id,item_id,timestamp\r\nu1,i1,1700000000\r\nu2,"i2\r\nx",1700000001\r\n',
    "doubled-quotes": 'user_id,item_id,timestamp,event_type\nu1,i1,1700000000,"say ""hi"""\n',
    "blank-line": "user_id,item_id,timestamp\nu1,i1,1700000000\n   \nu2,i2,1700000001\n",
    "short-row": "user_id,item_id,timestamp\nu1,i1\nu2,i2,1700000001\n",
}


def _rows(frame) -> list[tuple]:
    """Every row's columns (an absent optional column as empty: the batch reader adds it later, the stream's now)."""
    rows = frame.select(*[c for c in COLUMNS if c in frame.columns]).collect()
    return sorted(tuple(getattr(row, c, None) or "" for c in COLUMNS) for row in rows)


def _streamed(spark, folder, checkpoint) -> list[tuple]:
    seen = []
    query = (
        read_event_stream(spark, StreamSource(path=str(folder), format="csv"))
        .writeStream.foreachBatch(lambda batch, _: seen.extend(_rows(batch)))
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return sorted(seen)


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_streamed_csv_file_is_read_as_the_batch_stage_reads_it(spark, tmp_path, name):
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "events.csv").write_bytes(FILES[name].encode())
    batch = _rows(read_input(spark, TableInput(path=str(folder), format="csv"), "interactions"))
    assert _streamed(spark, folder, tmp_path / "checkpoint") == batch
