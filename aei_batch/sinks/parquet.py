"""A Parquet predictions table, partitioned by run date, published atomically per run.

Rows stream into one staging file on local disk while the run goes on. `commit()` publishes it as
`<output>/run_date=YYYY-MM-DD/part-<run_id>.parquet` with one atomic step: an `os.replace` on local
disk, one PUT on S3 (an object is invisible until its upload completes). Until then nothing is
visible in the table, so an interrupted run leaves no partial output; `abort()` removes the staging.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from aei_batch import storage
from aei_batch.records import PREDICTIONS_SCHEMA

log = logging.getLogger(__name__)


def partition_path(output: str, run_date: str, run_id: str) -> str:
    return f"{output.rstrip('/')}/run_date={run_date}/part-{run_id}.parquet"


class ParquetSink:
    """Stage rows locally, publish once."""

    def __init__(self, output: str, run_id: str, run_date: str) -> None:
        self.output = output
        self.run_id = run_id
        self.run_date = run_date
        self._dir = Path(tempfile.mkdtemp(prefix=f"aei-staging-{run_id}-"))
        self._staging = self._dir / f"part-{run_id}.parquet"
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.destination = partition_path(output, run_date, run_id)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._staging, PREDICTIONS_SCHEMA, compression="zstd")
        self._writer.write_table(table.cast(PREDICTIONS_SCHEMA))
        self.rows += table.num_rows

    def commit(self) -> str:
        """Publish the run's rows; returns where they are."""
        if self._writer is None:
            self.write(PREDICTIONS_SCHEMA.empty_table())
        assert self._writer is not None
        self._writer.close()
        if storage.is_s3(self.destination):
            bucket, key = storage.split_s3(self.destination)
            storage.s3_client().upload_file(str(self._staging), bucket, key)
        else:
            dest = Path(self.destination)
            dest.parent.mkdir(parents=True, exist_ok=True)
            hidden = dest.parent / f".{dest.name}.inflight"  # same filesystem, so the rename is atomic
            shutil.copyfile(self._staging, hidden)
            os.replace(hidden, dest)
        self._cleanup()
        return self.destination

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def read_table(output: str) -> pa.Table:
    """Read every published file of a Parquet predictions table (hidden/in-flight files are ignored)."""
    import pyarrow.dataset as ds

    if storage.is_s3(output):
        from pyarrow import fs as pafs

        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        kw = {"endpoint_override": endpoint, "scheme": endpoint.split(":")[0]} if endpoint else {}
        filesystem = pafs.S3FileSystem(region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), **kw)
        path = output[len("s3://") :].rstrip("/")
    else:
        filesystem = None
        path = output
        if not Path(output).exists():
            return PREDICTIONS_SCHEMA.empty_table()
    dataset = ds.dataset(path, format="parquet", filesystem=filesystem, schema=PREDICTIONS_SCHEMA,
                         partitioning=None, exclude_invalid_files=False)
    return dataset.to_table()
