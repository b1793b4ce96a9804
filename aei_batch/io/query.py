"""`aei-batch query`: read-only DuckDB SQL over the predictions table.

Two views are defined before the user's SQL runs:

* ``predictions``: every row of the table (Iceberg: `iceberg_scan` of the current metadata file; Parquet:
  the Hive-partitioned files),
* ``latest``: one row per (uri, model_version), the one with the latest ``scored_at``.

Read-only, in three layers: only a single SELECT (or WITH ... SELECT) statement is accepted; DuckDB runs
in memory with external access switched off except for the table's own location (``allowed_directories``),
and the configuration is locked so SQL cannot switch it back. Iceberg is read through `iceberg_scan` of one
metadata file, so no catalog with a write path is ever attached. DuckDB extensions load offline from the
`duckdb-ext-*` wheels. S3 credentials go into a DuckDB secret, which DuckDB redacts when listed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from aei_batch.errors import ConfigError, InputNotFoundError
from aei_batch.io import storage, tables
from aei_batch.records import COL, PREDICTIONS_SCHEMA

OUTPUT_FORMATS = ("table", "csv", "json")
EXTENSIONS = ("avro", "iceberg", "httpfs")


@dataclass
class QueryOptions:
    """Where the table is (the same settings `score` was given)."""

    output: str
    table_format: str = tables.DEFAULT_FORMAT
    catalog_uri: str | None = None
    catalog: Mapping[str, Any] | None = None
    table: str | None = None


def extension_directory() -> str:
    """The folder of the offline DuckDB extensions installed by the `duckdb-ext-*` packages."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "DuckDB extensions are not installed",
            hint="pip install duckdb-ext-iceberg duckdb-ext-avro duckdb-ext-httpfs (same version as duckdb)",
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "extensions")


def connect() -> Any:
    """An in-memory DuckDB with the iceberg, avro and httpfs extensions loaded offline."""
    import duckdb

    con = duckdb.connect(
        config={
            "extension_directory": extension_directory(),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    for ext in EXTENSIONS:
        con.load_extension(ext)
    return con


def check_read_only(sql: str) -> str:
    """Accept exactly one SELECT statement (WITH ... SELECT included); anything else is a ConfigError."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"cannot parse the SQL: {exc}") from None
    if len(statements) != 1:
        raise ConfigError(f"give exactly one SQL statement, got {len(statements)}")
    if statements[0].type.name != "SELECT":
        raise ConfigError(
            f"only SELECT queries are allowed (got {statements[0].type.name})",
            hint="aei-batch query is read-only; the table is written by `aei-batch score` only",
        )
    return sql


def _s3_secret(con: Any) -> None:
    """A DuckDB S3 secret from AWS_ENDPOINT_URL and the AWS default credential chain (never printed)."""
    import boto3

    creds = boto3.session.Session().get_credentials()
    params: dict[str, str] = {
        "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    }
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        params["KEY_ID"], params["SECRET"] = frozen.access_key, frozen.secret_key
        if frozen.token:
            params["SESSION_TOKEN"] = frozen.token
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        params.update(
            {
                "ENDPOINT": parts.netloc,
                "URL_STYLE": "path",
                "USE_SSL": "true" if parts.scheme == "https" else "false",
            }
        )
    fields = ", ".join(f"{k} {v if k == 'USE_SSL' else _quote(v)}" for k, v in params.items())
    con.execute(f"CREATE SECRET aei_s3 (TYPE s3, {fields})")


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _source(opts: QueryOptions) -> tuple[str | None, str]:
    """(SQL expression reading the table, or None for an empty table; the location to allow)."""
    tables.validate_format(opts.table_format)
    if opts.table_format == tables.FORMAT_PARQUET:
        root = opts.output.rstrip("/")
        if not storage.is_s3(root) and not os.path.isdir(root):
            raise InputNotFoundError(
                f"no Parquet table at {root}", hint="check --output (the `score` output)"
            )
        glob = f"{root}/run_date=*/*.parquet"
        return f"read_parquet({_quote(glob)}, hive_partitioning = false, union_by_name = true)", root + "/"
    from aei_batch.io.sinks.iceberg import open_table

    settings = tables.resolve_catalog(
        opts.output, catalog_uri=opts.catalog_uri, catalog=opts.catalog, table=opts.table
    )
    table = open_table(settings, create=False)
    if table is None:
        raise InputNotFoundError(
            f"no Iceberg table {settings.table} in the catalog for {opts.output}",
            hint="run `aei-batch score` first, or check --output/--catalog-uri/--table",
        )
    location = table.location().rstrip("/") + "/"
    if table.current_snapshot() is None:
        return None, location
    return f"iceberg_scan({_quote(table.metadata_location)})", location


def open_views(opts: QueryOptions) -> Any:
    """A locked, read-only DuckDB connection with the `predictions` and `latest` views."""
    con = connect()
    is_s3 = storage.is_s3(opts.output) or storage.is_s3(str((opts.catalog or {}).get("warehouse", "")))
    if is_s3:
        _s3_secret(con)
    source, location = _source(opts)
    if source is None:
        con.register("_empty_predictions", PREDICTIONS_SCHEMA.empty_table())
        source = "_empty_predictions"
    con.execute(f"CREATE VIEW predictions AS SELECT * FROM {source}")
    con.execute(
        f"CREATE VIEW latest AS SELECT * FROM predictions QUALIFY row_number() OVER "
        f"(PARTITION BY {COL.uri}, {COL.model_version} ORDER BY {COL.scored_at} DESC, {COL.run_id} DESC) = 1"
    )
    local = location if storage.is_s3(location) else os.path.abspath(location.removeprefix("file://")) + "/"
    con.execute(f"SET allowed_directories = [{_quote(local)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(sql: str, opts: QueryOptions) -> pa.Table:
    """Run one read-only SELECT over the table; returns the result as Arrow."""
    import duckdb

    check_read_only(sql)
    con = open_views(opts)
    try:
        return con.execute(sql).fetch_arrow_table()
    except duckdb.Error as exc:
        from aei_batch.io.security import redact

        raise ConfigError(f"query failed: {redact(str(exc))}") from None
    finally:
        con.close()


def print_result(result: pa.Table, fmt: str = "table", *, max_rows: int = 1000) -> None:
    """Print a result as a rich table, CSV or a JSON array of objects (credential values redacted)."""
    from aei_batch.io.security import redact

    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", hint=f"use one of: {', '.join(OUTPUT_FORMATS)}")
    if fmt == "csv":
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(result, sink)
        sys.stdout.write(redact(sink.getvalue().to_pybytes().decode()))
        return
    if fmt == "json":
        sys.stdout.write(redact(json.dumps(result.to_pylist(), default=str, ensure_ascii=False)) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    show = Table(
        title_justify="left",
        caption=f"{result.num_rows} rows"
        + (f" (first {max_rows} shown)" if result.num_rows > max_rows else ""),
    )
    for name in result.column_names:
        show.add_column(name)
    for row in result.slice(0, max_rows).to_pylist():
        show.add_row(
            *(
                "" if v is None else f"{v:.4g}" if isinstance(v, float) else redact(str(v))
                for v in row.values()
            )
        )
    Console().print(show)
