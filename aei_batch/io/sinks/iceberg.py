"""The Apache Iceberg predictions table: staged locally, one atomic commit per run, from the driver only.

Rows stream into a staging Parquet file on local disk while the run goes on (workers return rows; they
never touch the table). `commit()` then opens one pyiceberg transaction that

* deletes the rows this run re-scores (same key: uri, etag, model_version) and, with
  ``--mode overwrite-run-date``, every row of this run's date partition,
* appends this run's rows (plus the rows of rewritten files that must survive),

and commits it once. A crash before the commit leaves the table as it was: at most some unreferenced
data files, which no reader sees. Partitioned by identity(run_date); data files are Parquet (zstd).

The commit streams: the plan reads only the staged rows' key columns, and the append writes the staged
rows one row group at a time into data files of the same single snapshot (`append_streamed`), so the
driver's memory at commit time does not grow with the number of rows in the run.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import random
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch.errors import AeiError, ConfigError, CredentialsError, StorageError
from aei_batch.io import storage, tables
from aei_batch.io.sinks import pointer
from aei_batch.io.sinks.staging import BufferedParquetWriter, staged_chunks, staged_columns
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


#: Test-only kill points: SIGKILL this process at `staged` (data files written, nothing sent to the catalog),
#: `catalog` (commit-pointer tables: the new metadata file is written, the pointer not yet) or `published`.
KILL_AT_ENV = "AEI_TEST_COMMIT_KILL_AT"
#: How many times a commit that lost a race is re-planned against the winner's table before giving up.
COMMIT_ATTEMPTS = int(os.environ.get("AEI_COMMIT_ATTEMPTS", "8"))

# Snapshot summary properties written by every commit of a run.
PROP_RUN_ID = "aei.run-id"
PROP_MODE = "aei.mode"
PROP_COMMIT = "aei.commit"  # "checkpoint-N" or "final"
PROP_COMPLETE = "aei.run-complete"  # "true" on the final commit of a run
PROP_RESUMES = "aei.resumes"  # comma-separated run ids whose unfinished work this run completed
FINAL = "final"


def _kill_point(step: str) -> None:
    if os.environ.get(KILL_AT_ENV) == step:  # test-only: a process killed at this step of a commit
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _catalog_hint(settings: tables.CatalogSettings) -> str:
    return "check --catalog-uri / AEI_CATALOG_URI / the catalog: block of --config (docs/TABLES.md)"


@contextlib.contextmanager
def catalog_errors(settings: tables.CatalogSettings, action: str) -> Iterator[None]:
    """Turn catalog and file-IO failures into systemic errors that say what to fix (never a traceback).

    Outcomes the caller handles (no such table, lost commit races) pass through unchanged.
    """
    from pyiceberg import exceptions as ice

    passthrough = (
        AeiError,
        ice.NoSuchTableError,
        ice.NoSuchNamespaceError,
        ice.CommitFailedException,
        ice.ValidationException,
        ice.TableAlreadyExistsError,
        InjectedCommitFailure,
    )
    where = f"the Iceberg catalog {settings.name!r} ({settings.redacted().get('uri', settings.kind)})"
    try:
        yield
    except passthrough:
        raise
    except (ice.OAuthError, ice.UnauthorizedError, ice.ForbiddenError) as exc:
        raise CredentialsError(
            f"{where} rejected the credentials while {action}: {type(exc).__name__}: {exc}",
            hint="check catalog.credential / the token (e.g. PYICEBERG_CATALOG__AEI__CREDENTIAL)",
        ) from None
    except ice.CommitStateUnknownException as exc:
        raise StorageError(
            f"{where} did not say whether the commit landed while {action}: {exc}",
            hint="run the same command again: a commit is recognised by its run id and not repeated",
        ) from None
    except FileNotFoundError as exc:
        raise _missing_metadata(settings, exc) from None
    except OSError as exc:
        if "max retries exceeded" in str(exc).lower() or "connection" in type(exc).__name__.lower():
            raise StorageError(
                f"cannot reach {where} while {action}: {exc}", hint=_catalog_hint(settings)
            ) from None
        full = exc.errno == errno.ENOSPC or "No space left" in str(exc)
        raise StorageError(
            f"{'disk full' if full else 'I/O error'} while {action} ({where}): {exc}",
            hint="free space on that disk; nothing was committed" if full else "check the storage",
        ) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, requests and botocore errors, by name
        raise _classify(settings, where, action, exc) from None


def _classify(settings: tables.CatalogSettings, where: str, action: str, exc: Exception) -> AeiError:
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()
    if "database or disk is full" in low or "no space left" in low:
        return StorageError(
            f"disk full while {action}: the catalog database could not be written ({where})",
            hint="free space on the catalog's disk; the table is as it was before this commit",
        )
    if "unable to open database" in low or "readonly database" in low:
        return StorageError(
            f"cannot write the catalog database while {action} ({where}): {text}",
            hint="check that the folder exists and is writable",
        )
    if type(exc).__module__.startswith("botocore"):
        return storage.classify_s3_error(exc, action)  # type: ignore[return-value]
    if "connection" in low or "timeout" in low or "max retries" in low:
        return StorageError(f"cannot reach {where} while {action}: {text}", hint=_catalog_hint(settings))
    return StorageError(f"{where} failed while {action}: {text}", hint=_catalog_hint(settings))


def _missing_metadata(settings: tables.CatalogSettings, exc: BaseException) -> AeiError:
    if settings.local_root:
        root = settings.local_root
        return StorageError(
            f"the catalog in {root}/_catalog names table files that do not exist ({exc}): the table "
            f"folder was deleted, or {root} was moved or copied from elsewhere (Iceberg metadata holds "
            "absolute paths)",
            hint=f"restore the folder where it was, or delete {root}/_catalog (and {root}/aei.db) "
            "to start a new empty table here",
        )
    return StorageError(
        f"the Iceberg catalog {settings.name!r} names table files that do not exist: {exc}",
        hint="restore the table's files, or drop the table in the catalog to start a new one",
    )


def load_catalog(settings: tables.CatalogSettings) -> Any:
    """Open the configured pyiceberg catalog; unreachable or misconfigured catalogs fail fast.

    A rejected credential exits 6, an unreachable or failing catalog 8, bad properties 4.
    """
    from pyiceberg import exceptions as ice
    from pyiceberg.catalog import load_catalog as _load

    uri = settings.properties.get("uri", "")
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        folder = Path(uri[len("sqlite:///") :]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the catalog folder {folder}: {exc}",
                hint="check the output path and its rights",
            ) from None
    props = dict(settings.properties)
    if settings.commit_pointer:  # one private in-memory database per catalog, reachable from every thread
        props["uri"] = f"sqlite:///file:aei-{uuid.uuid4().hex}?mode=memory&cache=shared&uri=true"
    try:
        return _load(settings.name, **props)
    except (ice.OAuthError, ice.UnauthorizedError, ice.ForbiddenError, ice.CommitStateUnknownException):
        with catalog_errors(settings, "opening the catalog"):
            raise
    except Exception as exc:  # noqa: BLE001 - every catalog type raises its own errors
        text = f"{type(exc).__name__}: {exc}"
        low = text.lower()
        if isinstance(exc, OSError) or any(
            w in low for w in ("connection", "timeout", "max retries", "disk")
        ):
            with catalog_errors(settings, "opening the catalog"):
                raise
        raise ConfigError(
            f"cannot open the Iceberg catalog {settings.name!r} ({settings.redacted()}): {text}",
            hint=_catalog_hint(settings),
        ) from None
    raise AssertionError("unreachable")


def _without_pyiceberg_retries(table: Any) -> Any:
    """The same table whose transactions do not retry themselves.

    pyiceberg retries a lost commit by re-applying the same appends on top of the winner, which duplicates
    rows whose key the winner also wrote. Our commit loop refreshes and re-plans instead.
    """
    from pyiceberg.table import Table, TableProperties

    props = {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
    meta = table.metadata.model_copy(update={"properties": props})
    return Table(table.name(), meta, table.metadata_location, table.io, table.catalog)


def _has_commit(table: Any, run_id: str, commit: str) -> bool:
    """True when a snapshot of `run_id` tagged `commit` is in the table (a retry must not repeat it)."""
    return any(
        s.summary is not None and s.summary[PROP_RUN_ID] == run_id and s.summary[PROP_COMMIT] == commit
        for s in table.metadata.snapshots
    )


class TableHandle:
    """One Iceberg table and the catalog that commits it, for any catalog kind.

    `refresh()` loads the committed state (for commit-pointer tables: the metadata the pointer names);
    `commit(build, ...)` runs a re-planning optimistic loop: refresh, let `build` stage the changes against
    that state, commit; on a lost race (`CommitFailedException`, or pyiceberg's `ValidationException` when
    files it rewrites were changed meanwhile) start again, at most COMMIT_ATTEMPTS times.
    """

    def __init__(self, settings: tables.CatalogSettings, catalog: Any, table: Any) -> None:
        self.settings, self.catalog, self.table = settings, catalog, table

    @classmethod
    def open(cls, settings: tables.CatalogSettings, schema: pa.Schema, *, create: bool) -> TableHandle | None:
        """Load the table (created, partitioned by run_date, if `create`); None if absent and not `create`."""
        catalog = load_catalog(settings)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            table = cls._load(settings, catalog)
            if table is not None or not create:
                break
            if cls._create(settings, catalog, schema):
                table = cls._load(settings, catalog)
                break
            _backoff(attempt)  # another run created it first: load theirs
        if table is None:
            return None
        handle = cls(settings, catalog, table)
        handle._check_location()
        handle._evolve_schema(schema)
        return handle

    @staticmethod
    def _load(settings: tables.CatalogSettings, catalog: Any) -> Any | None:
        from pyiceberg.exceptions import NoSuchTableError

        with catalog_errors(settings, f"loading {settings.table}"):
            if settings.commit_pointer:
                location = settings.table_location()
                assert location is not None
                pointer.sync(catalog, settings.table, settings.namespace, location)
            try:
                return catalog.load_table(settings.table)
            except NoSuchTableError:
                return None

    @staticmethod
    def _create(settings: tables.CatalogSettings, catalog: Any, schema: pa.Schema) -> bool:
        """Create the table; False when another run created (or published) it first."""
        from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError

        location = settings.table_location()
        if settings.local_root and location and _has_metadata_files(location):
            raise StorageError(
                f"{location} holds Iceberg metadata that the catalog in {settings.local_root}/_catalog "
                "does not know (the catalog was deleted or replaced)",
                hint=f"restore {settings.local_root}/_catalog, or move {location} away to start a new table",
            )
        with catalog_errors(settings, f"creating {settings.table}"):
            _ensure_namespace(catalog, settings.namespace)
            try:
                tx = catalog.create_table_transaction(
                    settings.table,
                    schema=schema,
                    location=location,
                    properties={"write.parquet.compression-codec": "zstd", "format-version": "2"},
                )
                with tx.update_spec() as spec:
                    spec.add_identity(COL.run_date)
                tx.commit_transaction()
            except TableAlreadyExistsError:
                return False
            except Exception:
                # A REST catalog may answer a racing create with the other run's table (then the spec
                # update fails as a duplicate) or a conflict: if the table exists now, someone else won.
                if not settings.commit_pointer and catalog.table_exists(settings.table):
                    return False
                raise
            if settings.commit_pointer:
                assert location is not None
                try:
                    pointer.publish(location, None, catalog.load_table(settings.table).metadata_location)
                except CommitFailedException:
                    return False
        return True

    def _check_location(self) -> None:
        """A local output's table must live inside that output (a copy must not write the original)."""
        root = self.settings.local_root
        loc = self.table.location().removeprefix("file://")
        if root and not (loc == root or loc.startswith(root.rstrip("/") + "/")):
            raise ConfigError(
                f"the output folder {root} holds a catalog whose table lives at {loc}: the folder was "
                "copied or moved, and Iceberg metadata holds absolute paths, so writing here would change "
                "that table",
                hint=f"use the original folder ({loc.split('/aei.db/')[0]}), or delete {root}/_catalog "
                f"and {root}/aei.db to start a new table here",
            )

    def _evolve_schema(self, schema: pa.Schema) -> None:
        """Add columns that `schema` gained since the table was created (never drops any)."""
        have = {f.name for f in self.table.schema().fields}
        if all(name in have for name in schema.names):
            return

        def build(tx: Any, table: Any) -> bool:
            if all(name in {f.name for f in table.schema().fields} for name in schema.names):
                return False
            with tx.update_schema() as update:
                update.union_by_name(schema)
            return True

        self.commit(build, what=f"adding columns to {self.settings.table}")

    def refresh(self) -> Any:
        table = self._load(self.settings, self.catalog)
        if table is None:
            raise StorageError(
                f"the table {self.settings.table} disappeared from its catalog during the run",
                hint="someone dropped it; run again to create it",
            )
        self.table = table
        return table

    def commit(
        self,
        build: Callable[[Any, Any], bool],
        *,
        what: str,
        run_id: str | None = None,
        tag: str | None = None,
    ) -> bool:
        """Commit what `build(tx, table)` stages (it returns False when there is nothing to commit).

        With `run_id` and `tag`, a commit already in the table (a retry after an unknown outcome) is not
        repeated. Returns True when this call or an earlier attempt committed.
        """
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            table = self.refresh()
            if run_id and tag and _has_commit(table, run_id, tag):
                return True
            tx = _without_pyiceberg_retries(table).transaction()
            with catalog_errors(self.settings, what):
                if not build(tx, table):
                    return False
            _kill_point("staged")
            try:
                with catalog_errors(self.settings, what):
                    tx.commit_transaction()
                    if self.settings.commit_pointer:
                        location = self.settings.table_location()
                        assert location is not None
                        new = self.catalog.load_table(self.settings.table).metadata_location
                        _kill_point("catalog")
                        pointer.publish(location, table.metadata_location, new)
            except (CommitFailedException, ValidationException) as exc:
                log.warning(
                    "%s: lost a race with another writer (%s); re-planning (%d/%d)",
                    what,
                    exc,
                    attempt,
                    COMMIT_ATTEMPTS,
                )
                _backoff(attempt)
                continue
            _kill_point("published")
            self.refresh()
            return True
        raise StorageError(
            f"{what}: other writers committed to {self.settings.table} {COMMIT_ATTEMPTS} times in a row; "
            "gave up, nothing of this commit is in the table",
            hint="run the same command again (reruns are idempotent), or schedule fewer writers per table",
        )


def append_streamed(tx: Any, table: Any, chunks: Iterable[pa.Table], props: Mapping[str, str]) -> int:
    """Append `chunks` to `tx` as ONE snapshot, writing one data file per chunk (and partition) as it comes,
    so that only one chunk is in memory at a time (pyiceberg's `Transaction.append` takes the whole table;
    its streaming form is not supported on partitioned tables). Returns the rows appended; with none, the
    snapshot is still made (it records the commit and its properties)."""
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files

    counter = itertools.count(0)
    rows = 0
    metadata = tx.table_metadata
    with tx.update_snapshot(snapshot_properties=dict(props)).fast_append() as append:
        for chunk in chunks:
            if not chunk.num_rows:
                continue
            _check_pyarrow_schema_compatible(
                metadata.schema(), provided_schema=chunk.schema, format_version=metadata.format_version
            )
            for data_file in _dataframe_to_data_files(
                table_metadata=metadata,
                df=chunk,
                io=table.io,
                write_uuid=append.commit_uuid,
                counter=counter,
            ):
                append.append_data_file(data_file)
            rows += chunk.num_rows
    return rows


def _ensure_namespace(catalog: Any, namespace: str) -> None:
    """Create `namespace` unless it exists. Two first runs racing may both find it missing; the loser's
    create then fails (the SQL catalog raises its database's IntegrityError, not NamespaceAlreadyExists),
    which is fine once the namespace is there."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))


def _has_metadata_files(location: str) -> bool:
    meta = Path(location.removeprefix("file://")) / "metadata"
    return meta.is_dir() and any(meta.glob("*.metadata.json"))


def open_table(settings: tables.CatalogSettings, *, create: bool) -> Any | None:
    """Load the predictions table (created when `create`); None when missing and not `create`."""
    handle = TableHandle.open(settings, PREDICTIONS_SCHEMA, create=create)
    return handle.table if handle else None


def create_partitioned_table(catalog: Any, settings: tables.CatalogSettings, schema: pa.Schema) -> Any:
    """Create (or load, if another run created it first) `settings.table` with `schema`; return it loaded."""
    handle = TableHandle.open(settings, schema, create=True)
    assert handle is not None
    return handle.table


def existing_keys(table: Any, model_version: str, run_ids: Sequence[str] | None = None) -> pa.Table:
    """Key, status and error code of the rows scored with `model_version` (optionally by `run_ids` only)."""
    from pyiceberg.expressions import And

    if table.current_snapshot() is None or (run_ids is not None and not run_ids):
        return pa.table({c: pa.array([], pa.string()) for c in tables.KEY_SCAN_COLUMNS})
    flt = _eq(COL.model_version, model_version)
    if run_ids is not None:
        flt = And(flt, _in(COL.run_id, list(run_ids)))
    return table.scan(row_filter=flt, selected_fields=tables.KEY_SCAN_COLUMNS).to_arrow()


def unfinished_runs(table: Any, match: Mapping[str, str] | None = None) -> list[str]:
    """Run ids that committed checkpoints but never their final commit (oldest first).

    `match`: only runs whose checkpoint snapshots carry these summary properties (e.g. a fingerprint of
    the command), so a rerun resumes its own command's work only.
    """
    started: dict[str, None] = {}
    done: set[str] = set()
    for snap in table.metadata.snapshots:
        summ = snap.summary
        if summ is None or not summ[PROP_RUN_ID]:
            continue
        run = str(summ[PROP_RUN_ID])
        if summ[PROP_COMPLETE] == "true":
            done.add(run)
            done.update(r for r in str(summ[PROP_RESUMES] or "").split(",") if r)
        elif str(summ[PROP_COMMIT] or "").startswith("checkpoint-") and all(
            summ[k] == v for k, v in (match or {}).items()
        ):
            started.setdefault(run)
    return [r for r in started if r not in done]


class IcebergSink:
    """Stage rows locally while scoring; commit them to the Iceberg table, exactly once per key.

    Hooks for the scoring job:

    * `write(rows)` stages rows on local disk;
    * `checkpoint(properties)` commits the rows staged since the last checkpoint (snapshot tagged
      `aei.commit=checkpoint-N` with this run id, so a retry after an unknown outcome is not repeated);
    * `commit(properties)` commits the rest and marks the run complete (`aei.run-complete=true`);
    * `unfinished_runs(match)` / `existing_keys(model_version, run_ids=...)` / `resume(run_ids)` let a
      rerun skip the files an interrupted run already committed, and mark that run done at its end.

    Every commit is a merge planned against the table as committed at that moment: rows with a key this
    chunk scores are replaced (so concurrent runs over the same files leave one row per key).
    """

    def __init__(
        self, settings: tables.CatalogSettings, run_id: str, run_date: str, *, mode: str = tables.DEFAULT_MODE
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.run_date = run_date
        self.mode = tables.validate_mode(mode)
        handle = TableHandle.open(settings, PREDICTIONS_SCHEMA, create=True)
        assert handle is not None
        self.handle = handle
        self._dir = Path(tempfile.mkdtemp(prefix=f"aei-staging-{run_id}-"))
        self._writer: BufferedParquetWriter | None = None
        self._parts: list[Path] = []  # staged files not committed yet (a failed checkpoint keeps its own)
        self._seq = 0  # checkpoints committed so far
        self._staged = 0  # rows staged and not committed yet
        self.rows = 0
        self.replaced = 0
        self.resumed: list[str] = []
        self.snapshot_id: int | None = None

    @property
    def table(self) -> Any:
        return self.handle.table

    @property
    def destination(self) -> str:
        return f"iceberg {self.settings.table} at {self.table.location()}"

    @property
    def checkpoints(self) -> int:
        """How many checkpoints this run committed."""
        return self._seq

    def existing_keys(self, model_version: str, *, run_ids: Sequence[str] | None = None) -> pa.Table:
        """Key columns of committed rows of `model_version` (only those of `run_ids` when given)."""
        return existing_keys(self.handle.refresh(), model_version, run_ids)

    def unfinished_runs(self, match: Mapping[str, str] | None = None) -> list[str]:
        """Runs with checkpoints but no final commit, whose snapshots carry `match` (see `checkpoint`)."""
        return [r for r in unfinished_runs(self.handle.refresh(), match) if r != self.run_id]

    def resume(self, run_ids: Sequence[str]) -> None:
        """This run finishes `run_ids`: their rows count as this run's (overwrite-run-date keeps them) and
        the final commit marks them complete too."""
        self.resumed = tables.iter_unique([*self.resumed, *run_ids])

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            part = self._dir / f"rows-{len(list(self._dir.iterdir())):05d}.parquet"
            self._parts.append(part)
            self._writer = BufferedParquetWriter(part, PREDICTIONS_SCHEMA)  # whole row groups
        self._writer.write_table(table.cast(PREDICTIONS_SCHEMA))
        self.rows += table.num_rows
        self._staged += table.num_rows

    def _take_staged(self) -> list[Path]:
        """The files of every row staged and not committed yet (they stay until their commit lands)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return [p for p in self._parts if p.exists()]

    def _committed(self) -> None:
        for part in self._parts:
            part.unlink(missing_ok=True)
        self._parts, self._staged = [], 0

    def checkpoint(self, properties: Mapping[str, str] | None = None) -> int | None:
        """Commit the rows staged since the last checkpoint; returns its sequence number (None: no rows).

        Idempotent per (run id, sequence): if this raises, calling it again never commits the rows twice.
        """
        if self._staged == 0:
            return None
        staged = self._take_staged()
        tag = f"checkpoint-{self._seq + 1}"
        self._commit_chunk(staged, self._staged, tag, properties)
        self._committed()
        self._seq += 1
        return self._seq

    def commit(self, properties: Mapping[str, str] | None = None) -> str:
        """Commit the rest of the run and mark it complete; returns a description of where the rows are.

        `properties` go into the snapshot summary (e.g. counts); this run's id and mode always do.
        """
        try:
            staged = self._take_staged()
            marker_needed = self._seq > 0 or bool(self.resumed)
            if self._staged or marker_needed or self.mode == tables.MODE_OVERWRITE_RUN_DATE:
                self._commit_chunk(staged, self._staged, FINAL, properties)
        finally:
            self._cleanup()
        return self.destination

    def _props(self, tag: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        props = {str(k): str(v) for k, v in (extra or {}).items()}
        props.update({PROP_RUN_ID: self.run_id, PROP_MODE: self.mode, PROP_COMMIT: tag})
        if tag == FINAL:
            props[PROP_COMPLETE] = "true"
            if self.resumed:
                props[PROP_RESUMES] = ",".join(self.resumed)
        return props

    def _commit_chunk(
        self, staged: list[Path], n_rows: int, tag: str, extra: Mapping[str, str] | None
    ) -> None:
        props = self._props(tag, extra)
        replaced = [0]
        keys = staged_columns(staged, tables.KEY_COLUMNS, PREDICTIONS_SCHEMA)  # the plan needs only these

        def build(tx: Any, table: Any) -> bool:
            delete_filter, keep, replaced[0] = self._plan(table, keys)
            if delete_filter is not None:
                with warnings.catch_warnings():  # an empty day to overwrite is fine
                    warnings.filterwarnings("ignore", "Delete operation did not match any records")
                    tx.delete(delete_filter, snapshot_properties=props)
            # An empty append still makes a snapshot: it records the commit (and a final marker).
            chunks = itertools.chain(staged_chunks(staged, PREDICTIONS_SCHEMA), [keep])
            append_streamed(tx, table, chunks, props)
            if os.environ.get(FAIL_BEFORE_COMMIT_ENV) == "1":  # test-only failure injection point
                raise InjectedCommitFailure(f"{FAIL_BEFORE_COMMIT_ENV}=1: failing right before the commit")
            return True

        what = f"committing {n_rows} rows ({tag}) of run {self.run_id} to {self.settings.table}"
        self.handle.commit(build, what=what, run_id=self.run_id, tag=tag)
        self.replaced += replaced[0]
        snap = self.table.current_snapshot()
        self.snapshot_id = snap.snapshot_id if snap else None

    def _own_runs(self) -> list[str]:
        return [self.run_id, *self.resumed]

    def _plan(self, table: Any, new_keys: pa.Table) -> tuple[Any, pa.Table, int]:
        """Against `table`'s current state, for the staged rows' keys `new_keys`: the delete filter, the
        rows it catches that must be appended back, and how many rows this chunk replaces.

        Per model version the filter is (model_version = v AND uri IN (uris whose key is re-scored)); it
        can catch rows of the same uri with another etag (history): those are kept. With
        overwrite-run-date, rows of this run's date written by other runs go too.
        """
        from pyiceberg.expressions import And, Not, Or

        empty = PREDICTIONS_SCHEMA.empty_table()
        filters: list[Any] = []
        keeps: list[pa.Table] = []
        replaced = 0
        own = self._own_runs()
        overwrite = self.mode == tables.MODE_OVERWRITE_RUN_DATE
        if overwrite:
            filters.append(And(_eq(COL.run_date, self.run_date), Not(_in(COL.run_id, own))))
        if new_keys.num_rows and table.current_snapshot() is not None:
            for version in tables.iter_unique(
                v for v in new_keys[COL.model_version].to_pylist() if v is not None
            ):
                mine = new_keys.filter(pc.equal(new_keys[COL.model_version], version))
                uris = tables.iter_unique(mine[COL.uri].to_pylist())
                found = table.scan(
                    row_filter=And(_eq(COL.model_version, version), _in(COL.uri, uris))
                ).to_arrow()
                if found.num_rows == 0:
                    continue
                hit = pc.is_in(tables.table_keys(found), value_set=tables.table_keys(mine).combine_chunks())
                replaced += int(pc.sum(hit).as_py() or 0)
                touched = tables.iter_unique(found.filter(hit)[COL.uri].to_pylist())
                if not touched:
                    continue
                filters.append(And(_eq(COL.model_version, version), _in(COL.uri, touched)))
                caught = found.filter(pc.is_in(found[COL.uri], value_set=pa.array(touched, pa.string())))
                survivors = tables.rows_to_keep(caught, mine, tables.MODE_MERGE, self.run_date)
                if overwrite and survivors.num_rows:
                    day = pa.scalar(tables._as_date(self.run_date), pa.date32())
                    gone = pc.and_(
                        pc.equal(pc.cast(survivors[COL.run_date], pa.date32()), day),
                        pc.invert(pc.is_in(survivors[COL.run_id], value_set=pa.array(own, pa.string()))),
                    )
                    survivors = survivors.filter(pc.invert(gone))
                keeps.append(survivors.select(PREDICTIONS_SCHEMA.names).cast(PREDICTIONS_SCHEMA))
        if not filters:
            return None, empty, replaced
        flt = filters[0] if len(filters) == 1 else Or(*filters)
        return flt, pa.concat_tables(keeps) if keeps else empty, replaced

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
    with catalog_errors(settings, f"reading {settings.table}"):
        rows = table.scan().to_arrow()
    return rows.select(PREDICTIONS_SCHEMA.names).cast(PREDICTIONS_SCHEMA)
