"""`aei-batch query`: read-only DuckDB SQL over the predictions table.

Two views are defined before the user's SQL runs:

* ``predictions``: every row of the table (Iceberg: `iceberg_scan` of the current metadata file; Parquet:
  the Hive-partitioned files),
* ``latest``: one row per (uri, model_version), the one with the latest ``scored_at``.

Read-only, in three layers (measured on DuckDB 1.4.4, tests/integration/test_query_guard.py):

1. the SQL: exactly one statement, of DuckDB's SELECT type, whose first word is SELECT, WITH, FROM, VALUES,
   TABLE, DESCRIBE, SHOW or SUMMARIZE (DuckDB types `PRAGMA x` as a SELECT: the first word catches it);
   PRAGMA, ATTACH, COPY, INSTALL, LOAD, SET, CALL, EXPORT... are refused before anything runs;
2. the files: DuckDB runs in memory with external access switched off. A local table is opened through
   ``allowed_paths``: the exact list of the regular files inside the table's folder, found without following
   symbolic links (``allowed_directories`` is a string prefix: DuckDB would follow a link inside the folder
   to any file of the machine). Its temporary directory is off, so DuckDB's default `.tmp/` entry, relative
   to the working directory, is not allowed either. An s3:// table is allowed by its prefix;
3. the configuration is locked, so SQL cannot switch any of it back.

Iceberg is read through `iceberg_scan` of one metadata file, so no catalog with a write path is ever
attached. DuckDB extensions load offline from the `duckdb-ext-*` wheels. S3 credentials go into a DuckDB
secret, which DuckDB redacts when listed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from aei_batch.config import QUERY_OUTPUT_FORMATS, QueryOptions
from aei_batch.errors import ConfigError, InputNotFoundError
from aei_batch.io import storage, tables
from aei_batch.records import COL, PREDICTIONS_SCHEMA

__all__ = ["QueryOptions", "check_read_only", "connect", "open_views", "print_result", "run_query"]

OUTPUT_FORMATS = QUERY_OUTPUT_FORMATS
EXTENSIONS = ("avro", "iceberg", "httpfs")
#: The first word of an accepted statement (all of them are read-only queries in DuckDB).
_PARQUET_ARGS = "hive_partitioning = false, union_by_name = true"
FIRST_WORDS = ("SELECT", "WITH", "FROM", "VALUES", "TABLE", "DESCRIBE", "SHOW", "SUMMARIZE")


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
            "temp_directory": "",  # no spilling: and no `.tmp/` (relative to the cwd) in allowed_directories
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
    words = [sql[pos:].split(None, 1)[0] for pos, kind in duckdb.tokenize(sql) if kind.name != "comment"]
    first = words[0].rstrip(";").upper() if words else ""
    kind = statements[0].type.name
    if kind != "SELECT" or first.lstrip("(") not in FIRST_WORDS and first != "(":
        raise ConfigError(
            f"only SELECT queries are allowed (got {first or kind})",
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


def table_files(root: str, *, suffix: str = "", depth: int | None = None) -> list[str]:
    """The regular files under the local folder `root`, found without following symbolic links.

    Links (to files or folders), FIFOs and devices are left out, so nothing they point at can be opened
    through the list. `depth` limits how many folder levels below `root` are walked (None: all).
    """
    root = root.rstrip("/") or "/"
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        level = 0 if folder == root else folder[len(root) :].strip("/").count("/") + 1
        if depth is not None and level >= depth:
            dirs[:] = []
        for name in files:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and path.endswith(suffix):
                found.append(path)
    return sorted(found)


def _local_root(location: str) -> str:
    """An absolute local path from a folder or a file: URI (file:///x, file:/x)."""
    path = urlsplit(location).path if location.startswith("file:") else location
    return os.path.abspath(path).rstrip("/")


def _source(opts: QueryOptions) -> tuple[str | None, str, list[str] | None]:
    """(SQL expression reading the table, or None for an empty table; its location; for a local table,
    the exact files DuckDB may open)."""
    tables.validate_format(opts.table_format)
    if opts.table_format == tables.FORMAT_PARQUET:
        if storage.is_s3(opts.output):
            root = opts.output.rstrip("/")
            glob = f"{root}/run_date=*/*.parquet"
            return f"read_parquet({_quote(glob)}, {_PARQUET_ARGS})", root, None
        root = _local_root(opts.output)
        if not os.path.isdir(root):
            raise InputNotFoundError(
                f"no Parquet table at {root}", hint="check --output (the `score` output)"
            )
        parts = [p for p in table_files(root, suffix=".parquet", depth=2) if "/run_date=" in p[len(root) :]]
        if not parts:
            return None, root, []
        listed = "[" + ", ".join(_quote(p) for p in parts) + "]"
        return f"read_parquet({listed}, {_PARQUET_ARGS})", root, parts
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
    location = table.location().rstrip("/")
    files = None if storage.is_s3(location) else table_files(_local_root(location))
    if table.current_snapshot() is None:
        return None, location, files
    return f"iceberg_scan({_quote(table.metadata_location)})", location, files


def open_views(opts: QueryOptions) -> Any:
    """A locked, read-only DuckDB connection with the `predictions` and `latest` views."""
    con = connect()
    is_s3 = storage.is_s3(opts.output) or storage.is_s3(str((opts.catalog or {}).get("warehouse", "")))
    if is_s3:
        _s3_secret(con)
    source, location, files = _source(opts)
    if source is None:
        con.register("_empty_predictions", PREDICTIONS_SCHEMA.empty_table())
        source = "_empty_predictions"
    con.execute(f"CREATE VIEW predictions AS SELECT * FROM {source}")
    con.execute(
        f"CREATE VIEW latest AS SELECT * FROM predictions QUALIFY row_number() OVER "
        f"(PARTITION BY {COL.uri}, {COL.model_version} ORDER BY {COL.scored_at} DESC, {COL.run_id} DESC) = 1"
    )
    if files is None:  # object storage: no links, the table's prefix
        con.execute(f"SET allowed_directories = [{_quote(location + '/')}]")
    elif files:  # DuckDB compares the names as given: the plain path and the file:// URI metadata may hold
        # A parameter, not a literal list: a long literal list parses in more than linear time.
        con.execute("SET allowed_paths = $1", [[n for f in files for n in (f, "file://" + f)]])
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
        pacsv.write_csv(_flat(result), sink)
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


def _flat(result: pa.Table) -> pa.Table:
    """Nested columns (lists, structs, maps) as JSON text: CSV has no cell type for them."""
    cols = []
    for col in result.columns:
        if pa.types.is_nested(col.type):
            text = [
                None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in col.to_pylist()
            ]
            col = pa.array(text, type=pa.string())
        cols.append(col)
    return pa.table(cols, names=result.column_names)
