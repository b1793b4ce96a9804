"""A scoring run's table side, as its own process: `python -m tests.support.commit_worker SPEC_JSON`.

Used by the commit-protocol tests to drive the real sinks from several processes at once. SPEC keys:
output, catalog (a `catalog:` block or null), run_id, keys (how many files), start (first file number),
chunks (commits: chunks-1 checkpoints, then the final commit unless `stop_before_final`), barrier (a path:
wait until it exists before committing), segments (also write 2 segment rows per file), resume_match (a
command fingerprint: checkpoints carry it as `aei.command`; the run first resumes unfinished runs of it).
Prints one JSON line: rows, replaced, checkpoints, unfinished runs seen, resumed keys.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import pyarrow as pa

from aei_batch.io import tables
from aei_batch.io.sinks.iceberg import IcebergSink
from aei_batch.io.sinks.segments import IcebergSegmentsSink
from aei_batch.records import COL, PREDICTIONS_SCHEMA, SEGMENTS_SCHEMA

MODEL_VERSION = "v1"


def prediction_rows(run_id: str, numbers: list[int], run_date: str) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            COL.uri: f"s3://in/clip-{i:04d}.wav",
            COL.etag: f"etag-{i}",
            COL.model_version: MODEL_VERSION,
            COL.run_id: run_id,
            COL.run_date: dt.date.fromisoformat(run_date),
            COL.scored_at: now,
            COL.status: "ok",
            COL.predicted_emotion: "calm",
        }
        for i in numbers
    ]
    return pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)


def segment_rows(pred: pa.Table) -> pa.Table:
    base = {name: None for name in SEGMENTS_SCHEMA.names}
    rows = []
    for r in pred.to_pylist():
        for k in range(2):
            row = dict(base)
            row.update({n: r[n] for n in SEGMENTS_SCHEMA.names if n in r})
            row.update({"segment_index": k, "start_s": float(k), "end_s": float(k + 1), "channel": 0})
            rows.append(row)
    return pa.Table.from_pylist(rows, schema=SEGMENTS_SCHEMA)


def main(spec: dict) -> dict:
    run_id, run_date = spec["run_id"], spec.get("run_date", "2026-11-29")
    settings = tables.resolve_catalog(spec["output"], catalog=spec.get("catalog"))
    sink = IcebergSink(settings, run_id, run_date, mode=spec.get("mode", tables.MODE_MERGE))
    mode = spec.get("mode", tables.MODE_MERGE)
    segs = IcebergSegmentsSink(settings, run_id, run_date, mode=mode) if spec.get("segments") else None
    numbers = list(range(spec.get("start", 0), spec.get("start", 0) + spec["keys"]))
    out: dict = {"run_id": run_id}
    match = {"aei.command": spec["resume_match"]} if spec.get("resume_match") else None
    if match is not None:
        unfinished = sink.unfinished_runs(match)
        done = sink.existing_keys(MODEL_VERSION, run_ids=unfinished)
        skip = set(done[COL.uri].to_pylist())
        numbers = [i for i in numbers if f"s3://in/clip-{i:04d}.wav" not in skip]
        sink.resume(unfinished)
        out.update(unfinished=unfinished, skipped=len(skip))
    if spec.get("barrier"):
        while not Path(spec["barrier"]).exists():
            time.sleep(0.01)
    chunks = max(1, spec.get("chunks", 1))
    size = -(-len(numbers) // chunks) if numbers else 0
    props = dict(match or {"aei.command": "cmd"})
    part = prediction_rows(run_id, [], run_date)
    for c in range(chunks):
        part = prediction_rows(run_id, numbers[c * size : (c + 1) * size], run_date)
        sink.write(part)
        if segs is not None:
            segs.write(segment_rows(part))
        if c < chunks - 1:
            if segs is not None:
                segs.checkpoint(part.select(list(tables.KEY_COLUMNS)), props)
            sink.checkpoint(props)
    if spec.get("stop_before_final"):  # an interrupted run: its checkpoints stay committed
        out.update(checkpoints=sink.checkpoints)
        sink.abort()
        if segs is not None:
            segs.abort()
        return out
    if segs is not None:  # the keys of the last chunk (earlier ones were committed by checkpoints)
        segs.commit(part.select(list(tables.KEY_COLUMNS)), props)
    sink.commit({**props, "aei.rows": str(sink.rows)})
    out.update(rows=sink.rows, replaced=sink.replaced, checkpoints=sink.checkpoints)
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
