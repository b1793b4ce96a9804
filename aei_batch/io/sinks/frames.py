"""The per-frame table (`aei-batch score --frames-table LOCATION`): one Parquet file per run.

The score stage returns each batch's frame rows as their own table (`StageOutput.frames`, FRAMES_SCHEMA);
the driver's `OutputRouter` streams them into a `FramesSink`. On commit the run's frames are published as
`<LOCATION>/run_date=YYYY-MM-DD/part-<run_id>.parquet` in one atomic step (os.replace locally, one
PUT on S3), with the same run id as the predictions rows, so the two tables join on (uri, run_id).
This sink is independent of the predictions table's format (Parquet or Iceberg).
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from aei_batch.io import storage
from aei_batch.records import FRAMES_SCHEMA


def frames_path(location: str, run_date: str, run_id: str) -> str:
    return f"{location.rstrip('/')}/run_date={run_date}/part-{run_id}.parquet"


class FramesSink:
    """Stage frame rows in a local file; publish them once on commit."""

    def __init__(self, location: str, run_id: str, run_date: str) -> None:
        self.destination = frames_path(location, run_date, run_id)
        self._dir = storage.temp_dir(f"aei-frames-{run_id}-")  # removed at exit, even on SIGTERM
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
        try:
            storage.publish(self._staging, self.destination)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        return self.destination

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def read_frames(location: str) -> pa.Table:
    """Every published frame row under `location` (local or s3://)."""
    import pyarrow.dataset as ds

    if storage.as_local_path(location) is not None and not storage.exists(location):
        return FRAMES_SCHEMA.empty_table()
    filesystem, path = storage.filesystem(location)
    return ds.dataset(
        path, format="parquet", filesystem=filesystem, schema=FRAMES_SCHEMA, partitioning=None
    ).to_table()
