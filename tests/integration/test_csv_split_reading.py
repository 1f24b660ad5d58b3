"""The CSV reader splits a file over tasks only where that reads exactly what the multi-line reader reads
(issue 33: one task per file made the validation pass single-core on a large CSV). Real Spark throughout."""

from __future__ import annotations

import random

import pytest

from profile_features.spark import io

pytestmark = pytest.mark.spark

HEADER = "a,b,c"

# name: (file text after the header line, whether the line reader may read it)
CASES = {
    "lf": ("1,2,3\n4,5,6\n", True),
    "crlf": ("1,2,3\r\n4,5,6\r\n", True),
    "blank lines": ("1,2,3\n\n4,5,6\n", True),
    "crlf blank lines": ("1,2,3\r\n\r\n4,5,6\r\n", True),
    "no final newline": ("1,2,3\n4,5,6", True),
    "quoted fields": ('"1,x",2,"q""q"\n4,"",6\n', True),
    "too few and too many fields": ("1,2\n1,2,3,4\n4,5,6\n", True),
    "control characters inside a field": ("1,\x002,\x0c3\n", True),
    "quoted newline": ('1,"two\nlines",3\n4,5,6\n', False),
    "quoted crlf": ('1,"two\r\nlines",3\r\n4,5,6\r\n', False),
    "unclosed quote": ('1,"2,3\n4,5,6\n', False),
    "quote inside an unquoted field": ('1,x"y,"z\n4,5"6,7\n', False),
    "backslash before a quote": ('4,"5\\"",6\n7,8,9\n', False),
    "mixed line ends": ("1,2,3\r\n4,5,6\n", False),
    "lone cr": ("1,2\r,3\n4,5,6\n", False),
    "cr line ends": ("1,2,3\r4,5,6\r", False),
    "whitespace-only line": ("1,2,3\n   \n4,5,6\n", False),
    "control-only line": ("1,2,3\n\x01\n4,5,6\n", False),
    "crlf file without its last line end": ("1,2,3\r\n4,5,6", False),
}


def _rows(frame):
    return sorted((tuple(r) for r in frame.collect()), key=repr)


def _write(path, text: str) -> str:
    path.write_bytes(text.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_line_reader_is_chosen_only_where_it_reads_what_the_multi_line_reader_reads(tmp_path, spark, name):
    body, splittable = CASES[name]
    ending = "\r\n" if body.count("\r\n") > body.count("\n") / 2 else "\n"
    path = _write(tmp_path / "in.csv", HEADER + ending + body)
    assert io.one_line_records(spark, path) is splittable
    assert _rows(io._csv(spark, path)) == _rows(io._csv(spark, path, multi_line=True))


def test_each_file_of_a_folder_is_judged_on_its_own_line_ends(tmp_path, spark):
    folder = tmp_path / "parts"
    folder.mkdir()
    _write(folder / "part-0.csv", HEADER + "\n1,2,3\n")
    _write(folder / "part-1.csv", HEADER + "\r\n4,5,6\r\n")
    assert io.one_line_records(spark, str(folder))
    assert _rows(io._csv(spark, str(folder))) == [("1", "2", "3", None), ("4", "5", "6", None)]
    _write(folder / "part-2.csv", HEADER + '\n7,"8\n",9\n')
    assert not io.one_line_records(spark, str(folder))


def test_random_text_read_by_the_line_reader_reads_as_the_multi_line_reader_reads(tmp_path, spark):
    """Lines drawn from the characters the two readers treat differently; wherever the check lets the line
    reader read a file, every row (and every malformed row's text) must equal the multi-line reader's."""
    rng = random.Random(33)
    hazards = ['"', '""', "\r", "\n", "\r\n", " ", "\t", "\x01", "é"]
    chosen = 0
    for n in range(60):
        ending = rng.choice(["\n", "\r\n"])
        lines = []
        for _ in range(rng.randint(1, 4)):
            fields = [rng.choice(["v", '"v,w"', '"q""q"', "", '""', '"x\ny"']) for _ in range(rng.randint(2, 4))]
            line = ",".join(fields)
            if rng.random() < 0.3:  # one hazard: a character inserted anywhere, or a line of blanks alone
                at = rng.randint(0, len(line))
                line = rng.choice([line[:at] + rng.choice(hazards) + line[at:], rng.choice(["  ", "\t", "\x01 "])])
            lines.append(line)
        path = _write(tmp_path / f"r{n}.csv", HEADER + ending + ending.join(lines) + ending)
        if io.one_line_records(spark, path):
            chosen += 1
            assert _rows(io._csv(spark, path, multi_line=False)) == _rows(io._csv(spark, path, multi_line=True)), repr(
                open(path, encoding="utf-8", newline="").read()
            )
    assert 15 <= chosen <= 50, chosen  # both outcomes drawn often enough to mean something


def test_a_clean_file_is_read_by_several_tasks(tmp_path, spark):
    path = _write(tmp_path / "big.csv", HEADER + "\n" + "".join(f"u{n},i{n},{n}\n" for n in range(20_000)))
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "64k")
    try:
        split = io._csv(spark, path)
        assert split.rdd.getNumPartitions() > 1
        assert io._csv(spark, path, multi_line=True).rdd.getNumPartitions() == 1
        rows = _rows(split)
        assert len(rows) == 20_000 and rows == _rows(io._csv(spark, path, multi_line=True))
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)


def test_a_gzip_file_is_read_whole_without_a_scan(tmp_path, spark):
    """Neither reader splits a gzip file: the scan that decides between them would decompress it for nothing."""
    import gzip

    text = HEADER + "\n" + '1,"two\nlines",3\n' + "".join(f"u{n},i{n},{n}\n" for n in range(100))
    (tmp_path / "in.csv.gz").write_bytes(gzip.compress(text.encode()))
    tracker, group = spark.sparkContext.statusTracker(), f"gzip-{tmp_path.name}"
    spark.sparkContext.setJobGroup(group, "the line reader's scan")
    try:
        assert io.one_line_records(spark, str(tmp_path / "in.csv.gz")) is False
        assert tracker.getJobIdsForGroup(group) == []  # decided from the file names alone
    finally:
        spark.sparkContext.setJobGroup("", "")
    rows = _rows(io._csv(spark, str(tmp_path / "in.csv.gz")))
    assert len(rows) == 101 and ("1", "two\nlines", "3", None) in rows
