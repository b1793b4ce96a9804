"""A plain Parquet export of the predictions table, Hive-partitioned by run date (`run_date=YYYY-MM-DD/`).

Rows stream into one staging file on local disk while the run goes on; nothing is visible before
`commit()`, so an interrupted run leaves no partial output; `abort()` removes the staging.

`commit()` keeps one row per key (uri, etag, model_version), like the Iceberg table: it rewrites this
run's partition as `part-<run_id>.parquet` (its surviving rows + this run's rows), rewrites the older
partitions that hold rows this run scored again, then deletes the files it replaced. Each file appears
atomically (`os.replace` locally, one PUT on S3), but the commit as a whole is NOT atomic across files:
a reader in the middle may see a row twice, and a crash in the middle leaves duplicates that the next
commit removes (the latest `scored_at` per key wins). Use the Iceberg table where that matters.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aei_batch.io import storage, tables
from aei_batch.io.sinks.staging import ROW_GROUP_ROWS, BufferedParquetWriter, staged_chunks
from aei_batch.records import COL, PREDICTIONS_SCHEMA

log = logging.getLogger(__name__)


def partition_path(output: str, run_date: str, run_id: str) -> str:
    return f"{output.rstrip('/')}/run_date={run_date}/part-{run_id}.parquet"


class ParquetSink:
    """Stage rows locally, publish once."""

    def __init__(self, output: str, run_id: str, run_date: str, *, mode: str = tables.DEFAULT_MODE) -> None:
        self.output = output
        self.mode = tables.validate_mode(mode)
        self.replaced = 0
        self.run_id = run_id
        self.run_date = run_date
        self._dir = storage.temp_dir(f"aei-staging-{run_id}-")  # removed at exit, even on SIGTERM
        self._staging = self._dir / f"part-{run_id}.parquet"
        self._writer: BufferedParquetWriter | None = None
        self.rows = 0
        self.destination = partition_path(output, run_date, run_id)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = BufferedParquetWriter(self._staging, PREDICTIONS_SCHEMA)  # whole row groups
        self._writer.write_table(table.cast(PREDICTIONS_SCHEMA))
        self.rows += table.num_rows

    def existing_keys(self, model_version: str) -> pa.Table:
        """Key, status and error code of the rows scored with `model_version` (for --incremental)."""
        dataset = _dataset(self.output)
        if dataset is None:
            return pa.table({c: pa.array([], pa.string()) for c in tables.KEY_SCAN_COLUMNS})
        import pyarrow.dataset as ds

        return dataset.to_table(
            columns=list(tables.KEY_SCAN_COLUMNS), filter=ds.field(COL.model_version) == model_version
        )

    def commit(self) -> str:
        """Publish the run's rows, replacing earlier rows with the same key; returns this run's file.

        Streams: the plan reads only key columns, and each partition file is written one chunk at a time
        (its surviving rows, then this run's staged rows), so memory does not grow with the run or table."""
        if self._writer is None:
            self.write(PREDICTIONS_SCHEMA.empty_table())
        assert self._writer is not None
        self._writer.close()
        new_keys = pq.read_table(self._staging, columns=list(tables.KEY_COLUMNS))
        files = _partition_files(self.output)
        meta_cols = [*tables.KEY_COLUMNS, COL.scored_at, COL.run_id, COL.run_date]
        existing = _read_files(self.output, [f for fs in files.values() for f in fs], meta_cols)
        plan = tables.plan_rewrite(existing, new_keys, self.mode, self.run_date)
        del existing
        self.replaced = plan.replaced
        dates = set(plan.affected_dates)
        if new_keys.num_rows or self.mode == tables.MODE_OVERWRITE_RUN_DATE:
            dates.add(self.run_date)
        published: list[str] = []
        for day in sorted(dates):
            chunks: Iterator[pa.Table] = _surviving_chunks(files.get(day, []), plan)
            if day == self.run_date:
                chunks = itertools.chain(chunks, staged_chunks([self._staging], PREDICTIONS_SCHEMA))
            dest = self._publish(chunks, partition_path(self.output, day, self.run_id))
            if dest is not None:
                published.append(dest)
        _delete([f for day in dates for f in files.get(day, []) if f not in published])  # after publishing
        self._cleanup()
        return self.destination

    def _publish(self, chunks: Iterator[pa.Table], dest_uri: str) -> str | None:
        """Write `chunks` as one Parquet file that appears atomically at `dest_uri` (None: no rows)."""
        local = self._dir / f"publish-{abs(hash(dest_uri))}.parquet"
        writer = BufferedParquetWriter(local, PREDICTIONS_SCHEMA)
        rows = 0
        try:
            for chunk in chunks:
                writer.write_table(chunk.select(PREDICTIONS_SCHEMA.names).cast(PREDICTIONS_SCHEMA))
                rows += chunk.num_rows
        finally:
            writer.close()
        return storage.publish(local, dest_uri) if rows else None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _partition_files(output: str) -> dict[str, list[str]]:
    """Published files by run date: `{ "2026-11-24": [uri, ...] }` (hidden and in-flight files left out)."""
    root = output.rstrip("/")
    found: dict[str, list[str]] = {}
    for name in storage.list_files(root):
        part, _, file = name.partition("/")
        if (
            part.startswith("run_date=")
            and file.endswith(".parquet")
            and "/" not in file
            and not file.startswith((".", "_"))
        ):
            found.setdefault(part[len("run_date=") :], []).append(f"{root}/{name}")
    return found


def _surviving_chunks(uris: list[str], plan: tables.RewritePlan) -> Iterator[pa.Table]:
    """The rows of a partition's files that survive `plan`, read and filtered a batch at a time."""
    if not uris:
        return
    seen: set[tuple[str, int, str]] = set()
    for batch in _files_dataset(uris).to_batches(batch_size=ROW_GROUP_ROWS):
        chunk = pa.Table.from_batches([batch])
        kept = chunk.filter(pa.array(plan.keep_mask(chunk, seen), pa.bool_()))
        if kept.num_rows:
            yield kept


def _read_files(output: str, uris: list[str], columns: list[str] | None) -> pa.Table:
    if not uris:
        names = columns or PREDICTIONS_SCHEMA.names
        return pa.schema([PREDICTIONS_SCHEMA.field(c) for c in names]).empty_table()
    return _files_dataset(uris).to_table(columns=columns)


def _files_dataset(uris: list[str]) -> Any:
    """A pyarrow dataset over published files (all under one table location)."""
    import pyarrow.dataset as ds

    filesystem, _ = storage.filesystem(uris[0])
    paths = [storage.fs_path(u) for u in uris]
    return ds.dataset(paths, format="parquet", filesystem=filesystem, schema=PREDICTIONS_SCHEMA)


def _delete(uris: list[str]) -> None:
    storage.delete(uris)


def _dataset(output: str) -> Any:
    """The published files as a pyarrow dataset, or None when there are none yet."""
    files = [f for fs in _partition_files(output).values() for f in fs]
    return _files_dataset(files) if files else None


def read_table(output: str) -> pa.Table:
    """Read every published file of a Parquet predictions table (hidden/in-flight files are ignored)."""
    import pyarrow.dataset as ds

    if storage.as_local_path(output) is not None and not storage.exists(output):
        return PREDICTIONS_SCHEMA.empty_table()
    filesystem, path = storage.filesystem(output)
    dataset = ds.dataset(
        path,
        format="parquet",
        filesystem=filesystem,
        schema=PREDICTIONS_SCHEMA,
        partitioning=None,
        exclude_invalid_files=False,
        ignore_prefixes=[".", "_", "segments"],
    )  # segments/: the sibling segments table
    return dataset.to_table()
