"""Where rows go: the predictions table, as Apache Iceberg (default) or Hive-partitioned Parquet.

`open_sink(...)` gives the driver-side sink of a run (stage rows, `existing_keys()` for --incremental,
one `commit()`); `read_predictions(...)` reads a table back whatever its format. pyiceberg is imported
only when an Iceberg table is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from aei_batch.io import tables

if TYPE_CHECKING:
    from aei_batch.io.tables import CatalogSettings


class Sink(Protocol):
    """What the pipeline needs from a table sink."""

    rows: int
    replaced: int

    def existing_keys(self, model_version: str) -> pa.Table: ...
    def write(self, table: pa.Table) -> None: ...
    def commit(self) -> str: ...
    def abort(self) -> None: ...


def open_sink(
    output: str,
    run_id: str,
    run_date: str,
    *,
    fmt: str = tables.DEFAULT_FORMAT,
    mode: str = tables.DEFAULT_MODE,
    catalog: CatalogSettings | None = None,
) -> Sink:
    """The sink for one run. Opening an Iceberg sink creates the table if needed (fails fast)."""
    tables.validate_format(fmt)
    tables.validate_mode(mode)
    if fmt == tables.FORMAT_PARQUET:
        from aei_batch.io.sinks.parquet import ParquetSink

        return ParquetSink(output, run_id, run_date, mode=mode)
    from aei_batch.io.sinks.iceberg import IcebergSink

    return IcebergSink(catalog or tables.resolve_catalog(output), run_id, run_date, mode=mode)


def read_predictions(
    output: str,
    fmt: str = tables.DEFAULT_FORMAT,
    *,
    catalog_uri: str | None = None,
    catalog: Mapping[str, Any] | CatalogSettings | None = None,
    table: str | None = None,
) -> pa.Table:
    """Every row of the predictions table at `output` (PREDICTIONS_SCHEMA; empty if there is no table yet)."""
    tables.validate_format(fmt)
    if fmt == tables.FORMAT_PARQUET:
        from aei_batch.io.sinks.parquet import read_table

        return read_table(output)
    from aei_batch.io.sinks.iceberg import read_table as read_iceberg

    settings = (
        catalog
        if isinstance(catalog, tables.CatalogSettings)
        else tables.resolve_catalog(output, catalog_uri=catalog_uri, catalog=catalog, table=table)
    )
    return read_iceberg(settings)
