"""The Apache Iceberg predictions table: staged locally, one atomic commit per run, from the driver only.

Rows stream into a staging Parquet file on local disk while the run goes on (workers return rows; they
never touch the table). `commit()` then opens one pyiceberg transaction that

* deletes the rows this run re-scores (same key: uri, etag, model_version) and, with
  ``--mode overwrite-run-date``, every row of this run's date partition,
* appends this run's rows (plus the rows of rewritten files that must survive),

and commits it once. A crash before the commit leaves the table as it was: at most some unreferenced
data files, which no reader sees. Partitioned by identity(run_date); data files are Parquet (zstd).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aei_batch.errors import ConfigError, StorageError
from aei_batch.io import storage, tables
from aei_batch.io.sinks.staging import BufferedParquetWriter
from aei_batch.records import COL, PREDICTIONS_SCHEMA

log = logging.getLogger(__name__)

#: Test-only failure injection: when set to "1", `commit()` raises right before the catalog commit.
FAIL_BEFORE_COMMIT_ENV = "AEI_TEST_FAIL_BEFORE_COMMIT"


def _eq(column: str, value: Any) -> Any:
    """pyiceberg `EqualTo(column, value)` (its pydantic signature confuses mypy)."""
    from pyiceberg.expressions import EqualTo

    return cast(Any, EqualTo)(column, value)


def _in(column: str, values: list[str]) -> Any:
    """pyiceberg `In(column, values)`."""
    from pyiceberg.expressions import In

    return cast(Any, In)(column, values)


class InjectedCommitFailure(RuntimeError):
    """Raised by the test-only failure injection point (`AEI_TEST_FAIL_BEFORE_COMMIT=1`)."""


def load_catalog(settings: tables.CatalogSettings) -> Any:
    """Open the configured pyiceberg catalog; unreachable or misconfigured catalogs fail fast."""
    from pyiceberg.catalog import load_catalog as _load

    uri = settings.properties.get("uri", "")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return _load(settings.name, **settings.properties)
    except Exception as exc:  # noqa: BLE001 - every catalog type raises its own errors
        raise ConfigError(
            f"cannot open the Iceberg catalog {settings.name!r} ({settings.redacted()}): "
            f"{type(exc).__name__}: {exc}",
            hint="check --catalog-uri / AEI_CATALOG_URI / the catalog: block of --config",
        ) from None


def open_table(settings: tables.CatalogSettings, *, create: bool) -> Any | None:
    """Load the predictions table (created when `create`); None when missing and not `create`."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = load_catalog(settings)
    if settings.warehouse_is_truth:
        _follow_warehouse(catalog, settings)
    try:
        table = catalog.load_table(settings.table)
    except NoSuchTableError:
        if not create:
            return None
        table = create_partitioned_table(catalog, settings, PREDICTIONS_SCHEMA)
    _evolve_schema(table)
    return table


def create_partitioned_table(catalog: Any, settings: tables.CatalogSettings, schema: pa.Schema) -> Any:
    """Create `settings.table` with `schema`, partitioned by run_date (Parquet, zstd); return it loaded."""
    from pyiceberg.exceptions import TableAlreadyExistsError

    catalog.create_namespace_if_not_exists(settings.namespace)
    try:
        tx = catalog.create_table_transaction(
            settings.table,
            schema=schema,
            location=settings.table_location(),
            properties={"write.parquet.compression-codec": "zstd", "format-version": "2"},
        )
        with tx.update_spec() as spec:
            spec.add_identity(COL.run_date)
        tx.commit_transaction()
    except TableAlreadyExistsError:  # created meanwhile by another run
        pass
    return catalog.load_table(settings.table)


def _evolve_schema(table: Any) -> None:
    """Add columns that PREDICTIONS_SCHEMA gained since the table was created (never drops any)."""
    have = {f.name for f in table.schema().fields}
    if all(name in have for name in PREDICTIONS_SCHEMA.names):
        return
    with table.update_schema() as update:
        update.union_by_name(PREDICTIONS_SCHEMA)


def _metadata_version(location: str) -> int:
    name = location.rsplit("/", 1)[-1]
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else -1


def _latest_metadata_file(table_location: str) -> str | None:
    """The newest `NNNNN-<uuid>.metadata.json` under `<table>/metadata/` of an s3:// table location."""
    bucket, key = storage.split_s3(table_location.rstrip("/") + "/metadata/")
    best: tuple[int, str] | None = None
    try:
        for page in storage.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                if k.endswith(".metadata.json"):
                    cand = (_metadata_version(k), f"s3://{bucket}/{k}")
                    best = cand if best is None or cand > best else best
    except Exception as exc:  # noqa: BLE001
        raise storage.classify_s3_error(exc, f"listing the table metadata under {table_location}") from None
    return best[1] if best else None


def _follow_warehouse(catalog: Any, settings: tables.CatalogSettings) -> None:
    """Embedded sqlite catalog for an s3:// warehouse: point it at the newest metadata file in the warehouse.

    This lets a fresh machine (a new pod) continue the table written by the last run elsewhere. It is
    safe for one writer at a time; concurrent writers need a shared catalog (see docs/TABLES.md).
    """
    from pyiceberg.exceptions import NoSuchTableError

    location = settings.table_location()
    if location is None:
        return
    latest = _latest_metadata_file(location)
    if latest is None:
        return
    try:
        current = catalog.load_table(settings.table).metadata_location
    except NoSuchTableError:
        current = None
    if current is not None and _metadata_version(current) >= _metadata_version(latest):
        return
    if current is not None:
        log.warning("local catalog is behind the warehouse; following %s", latest)
        catalog.drop_table(settings.table)  # sql catalog: removes the pointer row only, never data
    catalog.create_namespace_if_not_exists(settings.namespace)
    catalog.register_table(settings.table, latest)


def existing_keys(table: Any, model_version: str) -> pa.Table:
    """Key, status and error code of the table's rows scored with `model_version` (for --incremental)."""
    if table.current_snapshot() is None:
        return pa.table({c: pa.array([], pa.string()) for c in tables.KEY_SCAN_COLUMNS})
    scan = table.scan(
        row_filter=_eq(COL.model_version, model_version), selected_fields=tables.KEY_SCAN_COLUMNS
    )
    return scan.to_arrow()


class IcebergSink:
    """Stage rows locally while scoring; commit them to the Iceberg table in one transaction."""

    def __init__(
        self, settings: tables.CatalogSettings, run_id: str, run_date: str, *, mode: str = tables.DEFAULT_MODE
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.run_date = run_date
        self.mode = tables.validate_mode(mode)
        self.table: Any = open_table(settings, create=True)
        self._dir = Path(tempfile.mkdtemp(prefix=f"aei-staging-{run_id}-"))
        self._staging = self._dir / "rows.parquet"
        self._writer: BufferedParquetWriter | None = None
        self.rows = 0
        self.replaced = 0
        self.snapshot_id: int | None = None

    @property
    def destination(self) -> str:
        return f"iceberg {self.settings.table} at {self.table.location()}"

    def existing_keys(self, model_version: str) -> pa.Table:
        return existing_keys(self.table, model_version)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = BufferedParquetWriter(self._staging, PREDICTIONS_SCHEMA)  # whole row groups
        self._writer.write_table(table.cast(PREDICTIONS_SCHEMA))
        self.rows += table.num_rows

    def commit(self) -> str:
        """Publish the run's rows atomically; returns a description of where they are."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        new_rows = (
            pq.read_table(self._staging) if self._staging.exists() else PREDICTIONS_SCHEMA.empty_table()
        )
        if new_rows.num_rows == 0 and self.mode == tables.MODE_MERGE:
            self._cleanup()
            return self.destination  # nothing to add: no snapshot
        try:
            self._commit(new_rows.cast(PREDICTIONS_SCHEMA))
        except InjectedCommitFailure:
            raise
        except Exception as exc:
            from pyiceberg.exceptions import CommitFailedException

            if isinstance(exc, CommitFailedException):
                raise StorageError(
                    f"another writer committed to {self.settings.table} during this run",
                    hint="run again (reruns are idempotent); schedule one writer per table",
                ) from None
            raise
        finally:
            self._cleanup()
        return self.destination

    def _commit(self, new_rows: pa.Table) -> None:
        from pyiceberg.expressions import Or

        delete_filter, keep = self._replaced_rows(new_rows)
        if self.mode == tables.MODE_OVERWRITE_RUN_DATE:
            day = _eq(COL.run_date, self.run_date)
            delete_filter = day if delete_filter is None else Or(day, delete_filter)
        props = {"aei.run-id": self.run_id, "aei.mode": self.mode}
        with self.table.transaction() as tx:
            if delete_filter is not None:
                with warnings.catch_warnings():  # an empty day to overwrite is fine
                    warnings.filterwarnings("ignore", "Delete operation did not match any records")
                    tx.delete(delete_filter, snapshot_properties=props)
            appended = pa.concat_tables([new_rows, keep]) if keep.num_rows else new_rows
            if appended.num_rows:
                tx.append(appended, snapshot_properties=props)
            if os.environ.get(FAIL_BEFORE_COMMIT_ENV) == "1":  # test-only failure injection point
                raise InjectedCommitFailure(f"{FAIL_BEFORE_COMMIT_ENV}=1: failing right before the commit")
        self.table = self.table.refresh()
        snap = self.table.current_snapshot()
        self.snapshot_id = snap.snapshot_id if snap else None

    def _replaced_rows(self, new_rows: pa.Table) -> tuple[Any, pa.Table]:
        """The delete filter for rows this run re-scores, and rows caught by it that must be kept.

        The filter is (model_version = v AND uri IN (...)) per model version: it can catch rows of the same
        uri with another etag (history of earlier content); those are read first and appended back.
        """
        from pyiceberg.expressions import And, Or

        empty = PREDICTIONS_SCHEMA.empty_table()
        if new_rows.num_rows == 0 or self.table.current_snapshot() is None:
            return None, empty
        filters, keeps = [], []
        for version in tables.iter_unique(
            v for v in new_rows[COL.model_version].to_pylist() if v is not None
        ):
            mine = new_rows.filter(pc.equal(new_rows[COL.model_version], version))
            uris = tables.iter_unique(mine[COL.uri].to_pylist())
            found = self.table.scan(
                row_filter=And(_eq(COL.model_version, version), _in(COL.uri, uris))
            ).to_arrow()
            if found.num_rows == 0:
                continue
            hit = pc.is_in(tables.table_keys(found), value_set=tables.table_keys(mine).combine_chunks())
            self.replaced += int(pc.sum(hit).as_py() or 0)
            touched = tables.iter_unique(found.filter(hit)[COL.uri].to_pylist())
            if not touched:
                continue
            filters.append(And(_eq(COL.model_version, version), _in(COL.uri, touched)))
            in_touched = found.filter(pc.is_in(found[COL.uri], value_set=pa.array(touched, pa.string())))
            survivors = tables.rows_to_keep(in_touched, mine, self.mode, self.run_date)
            keeps.append(survivors.select(PREDICTIONS_SCHEMA.names).cast(PREDICTIONS_SCHEMA))
        if not filters:
            return None, empty
        delete_filter = filters[0] if len(filters) == 1 else Or(*filters)
        return delete_filter, pa.concat_tables(keeps) if keeps else empty

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def read_table(settings: tables.CatalogSettings) -> pa.Table:
    """All rows of the Iceberg predictions table (empty when it does not exist yet)."""
    table = open_table(settings, create=False)
    if table is None or table.current_snapshot() is None:
        return PREDICTIONS_SCHEMA.empty_table()
    return table.scan().to_arrow().select(PREDICTIONS_SCHEMA.names).cast(PREDICTIONS_SCHEMA)
