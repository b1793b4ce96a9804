"""The per-frame table (`aei-batch score --frames-table LOCATION`): one Parquet file per run.

The score stage attaches each video file's frame rows to its output batch as a list column
(`attach_frames`); the driver splits them off (`split_frames`) before the predictions sink sees the
batch, and streams them into a `FramesSink`. On commit the run's frames are published as
`<LOCATION>/run_date=YYYY-MM-DD/part-<run_id>.parquet` in one atomic step (os.replace locally, one
PUT on S3), with the same run id as the predictions rows, so the two tables join on (uri, run_id).
This sink is independent of the predictions table's format (Parquet or Iceberg).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aei_batch.io import storage
from aei_batch.records import COL, FRAME_FIELDS, FRAMES_SCHEMA

FRAMES_COLUMN = "_frames"
FRAME_ITEM = pa.struct(FRAME_FIELDS)


def attach_frames(table: pa.Table, frames: list[list[dict[str, Any]] | None]) -> pa.Table:
    """Add the per-file frame rows (None for files without video) as a hidden list column."""
    return table.append_column(FRAMES_COLUMN, pa.array(frames, type=pa.list_(FRAME_ITEM)))


def split_frames(table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """(the batch without the frames column, its frame rows as FRAMES_SCHEMA or None when absent)."""
    if FRAMES_COLUMN not in table.column_names:
        return table, None
    nested = table[FRAMES_COLUMN].to_pylist()
    keep = table.drop_columns([FRAMES_COLUMN])
    ids = keep.select(
        [COL.uri, COL.etag, COL.video_model, COL.run_id, COL.run_date, COL.scored_at]
    ).to_pylist()
    rows = [{**item, **ident} for ident, items in zip(ids, nested, strict=True) for item in (items or [])]
    return keep, pa.Table.from_pylist(rows, schema=FRAMES_SCHEMA)


def frames_path(location: str, run_date: str, run_id: str) -> str:
    return f"{location.rstrip('/')}/run_date={run_date}/part-{run_id}.parquet"


class FramesSink:
    """Stage frame rows in a local file; publish them once on commit."""

    def __init__(self, location: str, run_id: str, run_date: str) -> None:
        self.destination = frames_path(location, run_date, run_id)
        self._dir = Path(tempfile.mkdtemp(prefix=f"aei-frames-{run_id}-"))
        self._staging = self._dir / "frames.parquet"
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._staging, FRAMES_SCHEMA, compression="zstd")
        self._writer.write_table(table.cast(FRAMES_SCHEMA))
        self.rows += table.num_rows

    def commit(self) -> str:
        """Publish the run's frames (an empty file when no video was scored); returns where."""
        if self._writer is None:
            self.write(FRAMES_SCHEMA.empty_table())
        assert self._writer is not None
        self._writer.close()
        if storage.is_s3(self.destination):
            bucket, key = storage.split_s3(self.destination)
            storage.s3_client().upload_file(str(self._staging), bucket, key)
        else:
            dest = Path(self.destination)
            dest.parent.mkdir(parents=True, exist_ok=True)
            hidden = dest.parent / f".{dest.name}.inflight"
            shutil.copyfile(self._staging, hidden)
            os.replace(hidden, dest)
        shutil.rmtree(self._dir, ignore_errors=True)
        return self.destination

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def read_frames(location: str) -> pa.Table:
    """Every published frame row under `location` (local or s3://)."""
    import pyarrow.dataset as ds

    filesystem = None
    path = location
    if storage.is_s3(location):
        from pyarrow import fs as pafs

        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        kw = {"endpoint_override": endpoint, "scheme": endpoint.split(":")[0]} if endpoint else {}
        filesystem = pafs.S3FileSystem(region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), **kw)
        path = location[len("s3://") :].rstrip("/")
    elif not Path(location).exists():
        return FRAMES_SCHEMA.empty_table()
    return ds.dataset(
        path, format="parquet", filesystem=filesystem, schema=FRAMES_SCHEMA, partitioning=None
    ).to_table()
