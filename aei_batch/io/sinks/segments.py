"""The segments table: one row per scored window of a segmented file, a sibling of the predictions table.

Segment rows travel from the workers to the driver as their own table (`StageOutput.segments`), and the
driver's `OutputRouter` stages them here. Formats follow the predictions table:

* Parquet: `<output>/segments/run_date=YYYY-MM-DD/part-<run_id>.parquet`, published atomically per run
  (the predictions reader ignores the `segments` folder). A rerun adds a new file; readers take, per
  file, the newest run (`read_segments(..., latest=True)`).
* Iceberg: table `<namespace>.segments` (default `aei.segments`) in the same catalog, partitioned by
  run_date; a commit deletes the segments of every file this run scored again (same uri and
  model_version, same etag) and appends the new ones, in one transaction.

pyiceberg has no multi-table transaction, so the pipeline commits the segments table *first* and the
predictions table second. A reader stays consistent by joining on run_id from the predictions table:
`predictions JOIN segments USING (uri, run_id)`. If the predictions commit fails after the segments
commit, the new segments belong to a run_id that no predictions row names (invisible to that join)
and the rerun replaces them.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch.io import storage, tables
from aei_batch.io.sinks.iceberg import append_streamed
from aei_batch.io.sinks.staging import BufferedParquetWriter, staged_chunks
from aei_batch.records import COL, SEGMENTS_SCHEMA

SEGMENTS_FOLDER = "segments"
SEGMENTS_TABLE_NAME = "segments"


def segments_location(output: str) -> str:
    return f"{output.rstrip('/')}/{SEGMENTS_FOLDER}"


def segments_settings(settings: tables.CatalogSettings) -> tables.CatalogSettings:
    """The segments table beside the predictions table: same catalog and namespace."""
    return dataclasses.replace(settings, table=f"{settings.namespace}.{SEGMENTS_TABLE_NAME}")


class _Staging:
    """Segment rows staged in one local Parquet file while the run goes on."""

    def __init__(self, run_id: str) -> None:
        self._dir = storage.temp_dir(f"aei-segments-{run_id}-")  # removed at exit, even on SIGTERM
        self.path = self._dir / "segments.parquet"
        self._writer: BufferedParquetWriter | None = None
        self.rows = 0

    def write(self, segs: pa.Table) -> None:
        if self._writer is None:  # whole row groups, not one per batch (staging.py)
            self._writer = BufferedParquetWriter(self.path, SEGMENTS_SCHEMA)
        self._writer.write_table(segs.cast(SEGMENTS_SCHEMA))
        self.rows += segs.num_rows

    def close(self) -> None:
        if self._writer is None:
            self._writer = BufferedParquetWriter(self.path, SEGMENTS_SCHEMA)
        self._writer.close()

    def cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class ParquetSegmentsSink:
    """Publish the run's segment rows as one Parquet file under `<output>/segments/run_date=.../`."""

    def __init__(self, output: str, run_id: str, run_date: str) -> None:
        self.run_id, self.run_date = run_id, run_date
        self.destination = f"{segments_location(output)}/run_date={run_date}/part-{run_id}.parquet"
        self._staging = _Staging(run_id)

    @property
    def rows(self) -> int:
        return self._staging.rows

    def write(self, segs: pa.Table) -> None:
        self._staging.write(segs)

    def commit(self, scored_keys: pa.Table | None = None) -> str | None:
        """Publish (nothing when the run produced no segment rows). `scored_keys` is unused for Parquet."""
        self._staging.close()
        try:
            if self.rows == 0:
                return None
            return storage.publish(self._staging.path, self.destination)
        finally:
            self._staging.cleanup()

    def abort(self) -> None:
        self._staging.cleanup()


class IcebergSegmentsSink:
    """Stage segment rows; commit them to `<namespace>.segments` (before the predictions of the same files).

    Same commit protocol as the predictions sink (`iceberg.TableHandle`): each commit is planned against
    the table as committed at that moment and re-planned if another writer wins the race, so concurrent
    runs over the same files leave one set of segments per (uri, etag, model_version). `checkpoint()`
    commits what was staged so far (idempotent per run id and sequence), `commit()` the rest.
    """

    def __init__(
        self, settings: tables.CatalogSettings, run_id: str, run_date: str, *, mode: str = tables.DEFAULT_MODE
    ) -> None:
        from aei_batch.io.sinks.iceberg import TableHandle

        self.settings = segments_settings(settings)
        self.run_id, self.run_date, self.mode = run_id, run_date, mode
        self._staging = _Staging(run_id)
        self._pending: list[_Staging] = []  # closed staging files of a commit that has not landed yet
        self._pending_keys: list[pa.Table] = []  # and the scored keys given with them
        self._seq = 0
        self.resumed: list[str] = []
        handle = TableHandle.open(self.settings, SEGMENTS_SCHEMA, create=True)
        assert handle is not None
        self.handle = handle

    @property
    def table(self) -> Any:
        return self.handle.table

    @property
    def rows(self) -> int:
        return self._staging.rows + sum(p.rows for p in self._pending)

    def write(self, segs: pa.Table) -> None:
        self._staging.write(segs)

    def resume(self, run_ids: list[str]) -> None:
        """Rows of `run_ids` count as this run's (overwrite-run-date keeps them)."""
        self.resumed = tables.iter_unique([*self.resumed, *run_ids])

    def checkpoint(
        self, scored_keys: pa.Table | None = None, properties: dict[str, str] | None = None
    ) -> int | None:
        """Commit the segments staged since the last checkpoint, replacing those of `scored_keys` (the keys
        of the predictions rows of this chunk). Returns the sequence number, None when there was nothing."""
        if self.rows == 0 and not self._pending_keys and (scored_keys is None or not scored_keys.num_rows):
            return None
        tag = f"checkpoint-{self._seq + 1}"
        self._commit_staged(scored_keys, tag, properties)
        self._seq += 1
        return self._seq

    def commit(
        self, scored_keys: pa.Table | None = None, properties: dict[str, str] | None = None
    ) -> str | None:
        """Replace the segments of every (uri, etag, model_version) in `scored_keys`, append this run's."""
        try:
            return self._commit_staged(scored_keys, "final", properties)
        finally:
            self.abort()

    def _commit_staged(
        self, scored_keys: pa.Table | None, tag: str, properties: dict[str, str] | None
    ) -> str | None:
        # The rows so far join the files of a commit that did not land yet (a failed checkpoint is retried
        # with its rows and keys by the next call); rows written from now on go to a new file.
        self._staging.close()
        self._pending.append(self._staging)
        self._staging = _Staging(self.run_id)
        if scored_keys is not None and scored_keys.num_rows:
            self._pending_keys.append(scored_keys.select(list(tables.KEY_COLUMNS)))
        keys = pa.concat_tables(self._pending_keys) if self._pending_keys else None
        paths = [Path(p.path) for p in self._pending]
        n_new = sum(p.rows for p in self._pending)
        props = {**(properties or {}), "aei.run-id": self.run_id, "aei.mode": self.mode, "aei.commit": tag}
        ex = _expressions()
        own = [self.run_id, *self.resumed]

        def build(tx: Any, table: Any) -> bool:
            filters: list[Any] = []
            keep = SEGMENTS_SCHEMA.empty_table()
            if keys is not None and table.current_snapshot() is not None:
                filters, keep = _replaced_segments(table, keys)
            if self.mode == tables.MODE_OVERWRITE_RUN_DATE:
                filters.append(
                    ex.And(ex.EqualTo(COL.run_date, self.run_date), ex.Not(ex.In(COL.run_id, own)))
                )
            if not filters and n_new == 0:
                return False
            if filters:
                with warnings.catch_warnings():  # an empty day to overwrite is fine
                    warnings.filterwarnings("ignore", "Delete operation did not match any records")
                    tx.delete(filters[0] if len(filters) == 1 else ex.Or(*filters), snapshot_properties=props)
            if n_new or keep.num_rows:  # one chunk in memory at a time (iceberg.append_streamed)
                chunks = itertools.chain(staged_chunks(paths, SEGMENTS_SCHEMA), [keep])
                append_streamed(tx, table, chunks, props)
            return True

        what = f"committing {n_new} segment rows ({tag}) of run {self.run_id} to {self.settings.table}"
        done = self.handle.commit(build, what=what, run_id=self.run_id, tag=tag)
        for pending in self._pending:  # landed (or nothing to commit): never committed again
            pending.cleanup()
        self._pending, self._pending_keys = [], []
        return f"iceberg {self.settings.table} at {self.table.location()}" if done else None

    def abort(self) -> None:
        for staging in [*self._pending, self._staging]:
            staging.cleanup()
        self._pending, self._pending_keys = [], []


def _replaced_segments(table: Any, scored_keys: pa.Table) -> tuple[list[Any], pa.Table]:
    """Delete filters per model version over re-scored uris, and caught rows of other etags to keep."""
    ex = _expressions()
    filters, keeps = [], []
    for version in tables.iter_unique(v for v in scored_keys[COL.model_version].to_pylist() if v is not None):
        mine = scored_keys.filter(pc.equal(scored_keys[COL.model_version], version))
        uris = tables.iter_unique(mine[COL.uri].to_pylist())
        flt = ex.And(ex.EqualTo(COL.model_version, version), ex.In(COL.uri, uris))
        found = table.scan(row_filter=flt).to_arrow()
        if found.num_rows == 0:
            continue
        filters.append(flt)
        other = pc.invert(
            pc.is_in(tables.table_keys(found), value_set=tables.table_keys(mine).combine_chunks())
        )
        keeps.append(found.filter(other).select(SEGMENTS_SCHEMA.names).cast(SEGMENTS_SCHEMA))
    return filters, pa.concat_tables(keeps) if keeps else SEGMENTS_SCHEMA.empty_table()


def _expressions() -> Any:
    """pyiceberg's row-filter expressions (typed loosely: their constructors confuse mypy)."""
    import importlib

    return importlib.import_module("pyiceberg.expressions")


def open_segments_table(settings: tables.CatalogSettings, *, create: bool) -> Any | None:
    """Load (or create, partitioned by run_date) the segments table; None when missing and not `create`."""
    from aei_batch.io.sinks.iceberg import TableHandle

    handle = TableHandle.open(settings, SEGMENTS_SCHEMA, create=create)
    return handle.table if handle else None


def open_segments_sink(
    output: str,
    run_id: str,
    run_date: str,
    *,
    fmt: str,
    mode: str = tables.DEFAULT_MODE,
    catalog: tables.CatalogSettings | None = None,
) -> Any:
    """The segments sink matching the predictions sink's format."""
    if fmt == tables.FORMAT_PARQUET:
        return ParquetSegmentsSink(output, run_id, run_date)
    return IcebergSegmentsSink(catalog or tables.resolve_catalog(output), run_id, run_date, mode=mode)


def read_segments(
    output: str,
    fmt: str = tables.DEFAULT_FORMAT,
    *,
    uri: str | None = None,
    run_id: str | None = None,
    latest: bool = True,
    catalog: tables.CatalogSettings | None = None,
) -> pa.Table:
    """Segment rows (optionally of one `uri` / `run_id`); `latest` keeps each file's newest run only."""
    if fmt == tables.FORMAT_PARQUET:
        t = _read_parquet(output)
    else:
        settings = segments_settings(catalog or tables.resolve_catalog(output))
        table = open_segments_table(settings, create=False)
        t = (
            SEGMENTS_SCHEMA.empty_table()
            if table is None or table.current_snapshot() is None
            else table.scan().to_arrow().select(SEGMENTS_SCHEMA.names).cast(SEGMENTS_SCHEMA)
        )
    if uri is not None:
        t = t.filter(pc.equal(t[COL.uri], uri))
    if run_id is not None:
        t = t.filter(pc.equal(t[COL.run_id], run_id))
    elif latest and t.num_rows:
        t = _newest_run_per_file(t)
    return t.sort_by([(COL.uri, "ascending"), ("channel", "ascending"), ("start_s", "ascending")])


def _newest_run_per_file(t: pa.Table) -> pa.Table:
    newest = t.group_by(COL.uri).aggregate([(COL.scored_at, "max")])
    joined = t.join(newest, keys=COL.uri)
    return joined.filter(pc.equal(joined[COL.scored_at], joined[f"{COL.scored_at}_max"])).select(
        SEGMENTS_SCHEMA.names
    )


def _read_parquet(output: str) -> pa.Table:
    import pyarrow.dataset as ds

    loc = segments_location(output)
    if storage.as_local_path(loc) is not None and not storage.exists(loc):
        return SEGMENTS_SCHEMA.empty_table()
    filesystem, path = storage.filesystem(loc)
    return ds.dataset(
        path, format="parquet", filesystem=filesystem, schema=SEGMENTS_SCHEMA, partitioning=None
    ).to_table()
