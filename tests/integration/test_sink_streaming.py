"""Sinks commit a run without holding it in memory: the staged rows are read back a chunk at a time.

Driver memory at commit time used to grow with the run (every staged row read into one Arrow table,
then handed to pyiceberg's append): 88 MiB more at 20,000 files than the rest of the run
(docs/PERFORMANCE.md). These tests pin the streamed form on real tables: an Iceberg commit of many
small batches is ONE snapshot made of data files of about `ROW_GROUP_ROWS` rows each (never one file per
batch, never the whole run in one), every row read back once; a rerun over half of the keys still leaves
one row per key; the segments table commits the same way; the Parquet export's rewrite of an existing
partition keeps each surviving row once across chunks.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aei_batch.io import tables
from aei_batch.io.sinks import open_sink
from aei_batch.io.sinks.iceberg import read_table
from aei_batch.io.sinks.segments import IcebergSegmentsSink, read_segments
from aei_batch.io.sinks.staging import ROW_GROUP_ROWS
from aei_batch.records import COL, PREDICTIONS_SCHEMA, SEG, SEGMENTS_SCHEMA

DAY = "2026-11-30"
N = 2 * ROW_GROUP_ROWS + 1808  # 10,000 rows: two full chunks and a partial one


def _predictions(lo: int, hi: int, run_id: str, etag: str = "e1") -> pa.Table:
    n = hi - lo
    now = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
    cols = {
        COL.uri: [f"file:///in/f{i:06d}.wav" for i in range(lo, hi)],
        COL.etag: [etag] * n,
        COL.model_version: ["v1"] * n,
        COL.run_id: [run_id] * n,
        COL.run_date: [dt.date.fromisoformat(DAY)] * n,
        COL.scored_at: [now] * n,
        COL.status: ["ok"] * n,
        COL.predicted_emotion: ["happy"] * n,
    }
    return pa.table({f.name: pa.array(cols.get(f.name, [None] * n), f.type) for f in PREDICTIONS_SCHEMA})


def _stage(sink, lo: int, hi: int, run_id: str, batch: int = 16) -> None:
    for start in range(lo, hi, batch):  # the driver's batches: 16 files each
        sink.write(_predictions(start, min(hi, start + batch), run_id))


def _snapshot_of(table, run_id: str):
    snaps = [s for s in table.metadata.snapshots if (s.summary or {}).get("aei.run-id") == run_id]
    appends = [s for s in snaps if s.summary.operation.value == "append"]
    assert len(appends) == 1, f"one append snapshot per commit, got {len(appends)}"
    return appends[0]


def test_iceberg_commit_streams_chunks_into_one_snapshot(tmp_path):
    out = str(tmp_path / "out")
    sink = open_sink(out, "run1", DAY, fmt="iceberg")
    _stage(sink, 0, N, "run1")
    sink.commit()
    snap = _snapshot_of(sink.table, "run1")
    assert int(snap.summary["added-records"]) == N
    assert int(snap.summary["added-data-files"]) == math.ceil(N / ROW_GROUP_ROWS) == 3

    # A second run re-scores half the files (same keys) and adds as many new ones: one row per key.
    sink2 = open_sink(out, "run2", DAY, fmt="iceberg")
    _stage(sink2, N // 2, N + N // 2, "run2")
    sink2.commit()
    assert sink2.replaced == N - N // 2
    rows = read_table(tables.resolve_catalog(out))
    assert rows.num_rows == N + N // 2
    con = duckdb.connect()
    con.register("p", rows)
    dupes = con.execute(
        "select count(*) from (select uri from p group by uri, etag, model_version having count(*) > 1)"
    )
    assert dupes.fetchone()[0] == 0
    by_run = dict(con.execute("select run_id, count(*) from p group by run_id").fetchall())
    assert by_run == {"run1": N // 2, "run2": N}


def _segments(lo: int, hi: int, run_id: str) -> pa.Table:
    n = hi - lo
    now = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
    cols = {
        COL.uri: [f"file:///in/call{i // 100:04d}.wav" for i in range(lo, hi)],
        COL.etag: ["e1"] * n,
        SEG.segment_index: [i % 100 for i in range(lo, hi)],
        SEG.start_s: [1.5 * (i % 100) for i in range(lo, hi)],
        SEG.end_s: [1.5 * (i % 100) + 3.0 for i in range(lo, hi)],
        COL.model_version: ["v1"] * n,
        COL.run_id: [run_id] * n,
        COL.run_date: [dt.date.fromisoformat(DAY)] * n,
        COL.scored_at: [now] * n,
    }
    return pa.table({f.name: pa.array(cols.get(f.name, [None] * n), f.type) for f in SEGMENTS_SCHEMA})


def test_iceberg_segments_commit_streams_whole_chunks(tmp_path):
    out = str(tmp_path / "out")
    sink = IcebergSegmentsSink(tables.resolve_catalog(out), "run1", DAY)
    for start in range(0, N, 100):  # one call's 100 windows per batch: 100 batches
        sink.write(_segments(start, min(N, start + 100), "run1"))
    sink.commit()
    snap = _snapshot_of(sink.table, "run1")
    assert int(snap.summary["added-records"]) == N
    assert int(snap.summary["added-data-files"]) == math.ceil(N / ROW_GROUP_ROWS)  # not one per call
    segs = read_segments(out, "iceberg")
    assert segs.num_rows == N
    assert len(set(zip(segs[COL.uri].to_pylist(), segs[SEG.segment_index].to_pylist(), strict=True))) == N


@pytest.mark.parametrize("mode", [tables.MODE_MERGE, tables.MODE_OVERWRITE_RUN_DATE])
def test_parquet_rewrite_streams_and_keeps_each_row_once(tmp_path, mode):
    out = str(tmp_path / "out")
    sink = open_sink(out, "run1", DAY, fmt="parquet")
    _stage(sink, 0, N, "run1")
    first = sink.commit()
    assert pq.ParquetFile(first.removeprefix("file://")).metadata.num_row_groups == math.ceil(
        N / ROW_GROUP_ROWS
    )

    sink2 = open_sink(out, "run2", DAY, fmt="parquet", mode=mode)
    _stage(sink2, N // 2, N + N // 2, "run2")
    sink2.commit()
    con = duckdb.connect()
    con.execute(f"create view p as select * from read_parquet('{out}/run_date=*/*.parquet')")
    total, keys = con.execute("select count(*), count(distinct (uri, etag, model_version)) from p").fetchone()
    if mode == tables.MODE_MERGE:
        assert (total, keys) == (N + N // 2, N + N // 2)
    else:  # overwrite-run-date: only this run's rows of the day remain
        assert (total, keys) == (N, N)
