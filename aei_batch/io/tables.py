"""Table-side rules shared by every sink: the row key, incremental filtering, rerun merging, catalog settings.

The key of a row is (uri, etag, model_version): the same bytes scored by the same model. A table never
holds two rows with one key. A rerun replaces the rows whose key it scores again (``merge``, the default),
or also drops everything else of its run date (``overwrite-run-date``). ``--incremental`` scores only the
listed files whose key is not settled in the table yet, before any work is fanned out.

Nothing here imports pyiceberg or duckdb: the CLI imports this module at command time only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch.errors import ConfigError, ErrorCode
from aei_batch.io import storage
from aei_batch.records import COL, STATUS_ERROR, FileRef

#: Columns that identify a row: the same file content scored by the same model version.
KEY_COLUMNS: tuple[str, ...] = (COL.uri, COL.etag, COL.model_version)
#: Columns read from the table to decide what an incremental run skips.
KEY_SCAN_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, COL.status, COL.error_code)

MODE_MERGE = "merge"
MODE_OVERWRITE_RUN_DATE = "overwrite-run-date"
MODES: tuple[str, ...] = (MODE_MERGE, MODE_OVERWRITE_RUN_DATE)
DEFAULT_MODE = MODE_MERGE

FORMAT_ICEBERG = "iceberg"
FORMAT_PARQUET = "parquet"
FORMATS: tuple[str, ...] = (FORMAT_ICEBERG, FORMAT_PARQUET)
DEFAULT_FORMAT = FORMAT_ICEBERG

DEFAULT_TABLE = "aei.predictions"
DEFAULT_CATALOG_NAME = "aei"

#: Error rows with these codes may be transient: an incremental run scores their files again.
RETRIED_ERROR_CODES: frozenset[str] = frozenset(
    {str(ErrorCode.READ_FAILED), str(ErrorCode.DECODE_TIMEOUT), str(ErrorCode.INTERNAL)}
)

_SEP = "\x1f"  # unit separator: cannot appear in a URI, an ETag or a version string


def key_strings(uri: Any, etag: Any, model_version: Any) -> pa.ChunkedArray | pa.Array:
    """One string per row joining the key columns (a null etag counts as the empty string)."""
    parts = [pc.fill_null(pc.cast(col, pa.string()), "") for col in (uri, etag, model_version)]
    return pc.binary_join_element_wise(*parts, _SEP)


def table_keys(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """`key_strings` of a table holding the key columns."""
    return key_strings(table[COL.uri], table[COL.etag], table[COL.model_version])


def settled_keys(existing: pa.Table) -> pa.Array:
    """Keys whose row is final: predictions, and errors that a retry would not change."""
    if existing.num_rows == 0:
        return pa.array([], pa.string())
    retry = pc.and_(
        pc.equal(existing[COL.status], STATUS_ERROR),
        pc.is_in(pc.fill_null(existing[COL.error_code], ""), pa.array(sorted(RETRIED_ERROR_CODES))),
    )
    final = existing.filter(pc.invert(pc.fill_null(retry, False)))
    return pc.unique(table_keys(final).combine_chunks() if final.num_rows else pa.array([], pa.string()))


def filter_unscored(refs: list[FileRef], model_version: str, settled: pa.Array) -> tuple[list[FileRef], int]:
    """Drop the refs whose key is settled in the table. Returns (refs to score, how many were skipped)."""
    if not refs or len(settled) == 0:
        return refs, 0
    keys = key_strings(
        pa.array([r.uri for r in refs], pa.string()),
        pa.array([r.etag for r in refs], pa.string()),
        pa.array([model_version] * len(refs), pa.string()),
    )
    done = pc.is_in(keys, value_set=settled).to_pylist()
    todo = [r for r, d in zip(refs, done, strict=True) if not d]
    return todo, len(refs) - len(todo)


def rows_to_keep(existing: pa.Table, new_rows: pa.Table, mode: str, run_date: str) -> pa.Table:
    """The rows of `existing` that survive this run: not re-scored, and not in an overwritten run date."""
    if existing.num_rows == 0:
        return existing
    keep = pc.invert(pc.is_in(table_keys(existing), value_set=pc.unique(table_keys(new_rows))))
    if mode == MODE_OVERWRITE_RUN_DATE:
        day = pa.scalar(_as_date(run_date), pa.date32())
        keep = pc.and_(keep, pc.not_equal(pc.cast(existing[COL.run_date], pa.date32()), day))
    return existing.filter(keep)


@dataclass
class RewritePlan:
    """What a Parquet export rewrites: the partitions touched, and which existing rows survive."""

    affected_dates: set[str]
    survivors: set[tuple[str, int, str]]  # (key, scored_at as int, run_id) of the rows to keep
    replaced: int  # existing rows whose key this run scored again

    def keep_mask(self, rows: pa.Table, seen: set[tuple[str, int, str]] | None = None) -> list[bool]:
        """Per row of a partition: keep it? (Survivors only, each identity once; pass the same `seen` set
        for every chunk of one partition read in chunks.)"""
        keys = table_keys(rows).to_pylist()
        stamps = pc.cast(rows[COL.scored_at], pa.int64()).to_pylist()
        runs = rows[COL.run_id].to_pylist()
        seen = set() if seen is None else seen
        mask = []
        for ident in zip(keys, stamps, runs, strict=True):
            mask.append(ident in self.survivors and ident not in seen)
            seen.add(ident)
        return mask


def plan_rewrite(existing: pa.Table, new_rows: pa.Table, mode: str, run_date: str) -> RewritePlan:
    """Plan a Parquet export commit from the key columns (+ scored_at, run_id, run_date) of the existing rows.

    A row survives when its key is not scored by this run and it is the latest row of its key (this also
    heals duplicates left by an interrupted export); with overwrite-run-date, rows of `run_date` never do.
    Partitions holding a row that does not survive are rewritten, and so is this run's partition.
    """
    new_keys = set(table_keys(new_rows).to_pylist()) if new_rows.num_rows else set()
    if existing.num_rows == 0:
        return RewritePlan(set(), set(), 0)
    keys = table_keys(existing).to_pylist()
    stamps = pc.cast(existing[COL.scored_at], pa.int64()).to_pylist()
    runs = existing[COL.run_id].to_pylist()
    dates = [d.isoformat() for d in pc.cast(existing[COL.run_date], pa.date32()).to_pylist()]
    best: dict[str, tuple[int, str]] = {}
    replaced = 0
    for k, t, r, d in zip(keys, stamps, runs, dates, strict=True):
        if k in new_keys:
            replaced += 1
        elif not (mode == MODE_OVERWRITE_RUN_DATE and d == run_date) and (k not in best or (t, r) > best[k]):
            best[k] = (t, r)
    survivors = {(k, t, r) for k, (t, r) in best.items()}
    seen: set[tuple[str, int, str]] = set()
    affected = set()
    for k, t, r, d in zip(keys, stamps, runs, dates, strict=True):
        if (k, t, r) not in survivors or (k, t, r) in seen:
            affected.add(d)
        seen.add((k, t, r))
    return RewritePlan(affected, survivors, replaced)


def _as_date(value: str) -> Any:
    import datetime as dt

    return dt.date.fromisoformat(value)


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown --mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    return mode


def validate_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(
            f"unknown table format {fmt!r}", hint=f"use --format {' or --format '.join(FORMATS)}"
        )
    return fmt


# --------------------------------------------------------------------------- catalog settings


@dataclass(frozen=True)
class CatalogSettings:
    """How to reach the Iceberg catalog and which table to use.

    `properties` go to `pyiceberg.catalog.load_catalog(name, **properties)` as they are, so any pyiceberg
    catalog works (sql, rest, glue, ...). Two embedded defaults exist (no catalog configured):

    * `commit_pointer`: an s3:// output. The truth is a small pointer object beside the table's metadata
      (`metadata/aei-commit.json`, written last, with a conditional PUT); the pyiceberg catalog is an
      in-memory sqlite rebuilt from the pointer in every process (aei_batch/io/sinks/pointer.py).
    * `local_root`: a local output folder whose sqlite catalog lives in `<output>/_catalog/`. The table's
      metadata holds absolute paths, so the sink checks that the table still lives under this folder.
    """

    name: str
    table: str
    properties: dict[str, str] = field(default_factory=dict)
    commit_pointer: bool = False
    local_root: str | None = None

    @property
    def namespace(self) -> str:
        return self.table.rsplit(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.table.rsplit(".", 1)[1]

    @property
    def kind(self) -> str:
        """The pyiceberg catalog type (`sql`, `rest`, `glue`, ...)."""
        return self.properties.get("type", "sql")

    def table_location(self) -> str | None:
        """`<warehouse>/<namespace>.db/<table>` when the warehouse is a path or URI, else the catalog decides.

        A REST catalog's `warehouse` names a catalog-side warehouse, not a location: the server places tables.
        """
        wh = self.properties.get("warehouse")
        if not wh or self.kind == "rest" or ("://" not in wh and not wh.startswith("/")):
            return None
        return f"{wh.rstrip('/')}/{self.namespace}.db/{self.table_name}"

    def redacted(self) -> dict[str, str]:
        """Properties safe to print: anything that looks like a secret or a URI with a password is masked."""
        out = {}
        for k, v in self.properties.items():
            secret = any(
                s in k.lower() for s in ("secret", "password", "token", "credential", "key-id", "key")
            )
            out[k] = "***" if secret and k not in ("warehouse",) else _mask_uri_password(v)
        return out


def _mask_uri_password(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password:
        return value.replace(f":{parts.password}@", ":***@")
    return value


def aei_home() -> Path:
    """Where aei_batch keeps local state (`AEI_HOME`, default ~/.aei_batch)."""
    return Path(os.environ.get("AEI_HOME") or Path.home() / ".aei_batch").expanduser()


def resolve_catalog(
    output: str,
    *,
    catalog_uri: str | None = None,
    catalog: Mapping[str, Any] | None = None,
    table: str | None = None,
) -> CatalogSettings:
    """Combine --catalog-uri / AEI_CATALOG_URI / a `catalog:` config block into catalog settings.

    Precedence: --catalog-uri, then AEI_CATALOG_URI, then `catalog.uri`. Without any, the embedded default:
    `<output>/_catalog/catalog.db` (sqlite) for a local output; for an s3:// output, the commit pointer
    object beside the table's metadata (no local state). The warehouse defaults to the output, except
    for REST catalogs, whose `warehouse` names a server-side warehouse.
    """
    props = {str(k): str(v) for k, v in dict(catalog or {}).items() if v is not None}
    name = props.pop("name", DEFAULT_CATALOG_NAME)
    ident = table or os.environ.get("AEI_TABLE") or props.pop("table", None) or DEFAULT_TABLE
    props.pop("table", None)
    if "." not in ident.strip(".") or ident.startswith(".") or ident.endswith("."):
        raise ConfigError(
            f"table identifier {ident!r} needs a namespace", hint="use NAMESPACE.TABLE, e.g. aei.predictions"
        )
    uri = catalog_uri or os.environ.get("AEI_CATALOG_URI") or props.get("uri")
    pointer, local_root = False, None
    if uri:
        props["uri"] = uri
        props.setdefault("type", "rest" if uri.startswith(("http://", "https://")) else "sql")
    elif "type" not in props:
        props["type"] = "sql"
        if storage.is_s3(output):
            props["uri"] = "sqlite:///:memory:"  # rebuilt from the commit pointer in every process
            pointer = True
        else:
            local_root = str(Path(output).absolute())
            props["uri"] = f"sqlite:///{Path(local_root) / '_catalog' / 'catalog.db'}"
    if props["type"] != "rest":
        props.setdefault(
            "warehouse", output.rstrip("/") if storage.is_s3(output) else str(Path(output).absolute())
        )
    if props["type"] == "rest" or storage.is_s3(props.get("warehouse", "")):
        _add_s3_io_props(props)
    return CatalogSettings(
        name=name, table=ident, properties=props, commit_pointer=pointer, local_root=local_root
    )


def _add_s3_io_props(props: dict[str, str]) -> None:
    """Point pyiceberg's S3 FileIO at AWS_ENDPOINT_URL / the region; keys come from the AWS default chain."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        props.setdefault("s3.endpoint", endpoint)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        props.setdefault("s3.region", region)


def iter_unique(values: Iterable[str]) -> list[str]:
    """Unique values in first-seen order."""
    return list(dict.fromkeys(values))
