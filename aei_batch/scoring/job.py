"""The scoring job: list -> fan out (decode, features, model) -> one atomic table commit -> summary."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch.config import ScoreOptions
from aei_batch.errors import ConfigError, InputNotFoundError, StorageError
from aei_batch.io import storage
from aei_batch.io.sinks.router import OutputRouter
from aei_batch.models.model_card import licence_line
from aei_batch.records import COL, STATUS_ERROR, FileRef
from aei_batch.scoring.rows import RunContext, refs_to_table
from aei_batch.scoring.stage import ScoreStage
from aei_batch.scoring.summary import RunSummary

log = logging.getLogger(__name__)


def list_refs(opts: ScoreOptions) -> list[FileRef]:
    """Every input file (error rows decided at listing included); InputNotFoundError when there is none."""
    from aei_batch.config import listing_kwargs

    source = opts.source
    refs = list(storage.list_inputs(source, **listing_kwargs(opts)))
    if not refs:
        raise InputNotFoundError(
            f"no input files found under {source}",
            hint="check the location and --extensions (default: common audio and video types)",
        )
    return refs


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    # No monitor thread: with no other thread in the driver, the decode watchdog may fork its child
    # (aei_batch/runtime/watchdog.py) instead of starting an interpreter.
    tqdm.monitor_interval = 0
    return tqdm(
        total=total,
        unit="file",
        desc="scoring",
        disable=not enabled or not sys.stderr.isatty(),  # no TTY (Ray job logs): observe's progress lines
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def run_score(opts: ScoreOptions) -> RunSummary:
    """Score every file under `opts.source` into the table at `opts.output`. Raises AeiError subclasses."""
    from aei_batch.observe import RunObserver
    from aei_batch.runtime.runners import Runtime

    t0 = time.perf_counter()
    observer = RunObserver.from_options(opts)  # checks --metrics / --on-complete / --lineage first
    with _terminate_cleanly():
        early = Runtime("ray", opts.workers) if opts.runner == "ray" else None
        runtimes: list[Runtime] = [early] if early is not None else []
        if early is not None:  # an embedded Ray's start (seconds) overlaps listing and the model load
            early.start_early(warm_modules=WARM_MODULES)
        failed = True
        try:
            summary = _run_score(opts, t0, early, observer, runtimes)
            observer.completed(summary)
            failed = False
            return summary
        except BaseException as exc:
            observer.failed(observer.run_id, exc)
            raise
        finally:
            observer.close()
            for rt in runtimes:  # whatever failed, no worker outlives the run (they hold the cluster's CPUs)
                rt.close(abort=failed)


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM (Kubernetes stopping a pod, a scheduler's timeout) unwinds the run like Ctrl-C does: staged
    rows are aborted, workers and decoder children are stopped, temporary files removed, and the process
    exits 143. Python's default for SIGTERM ends the process at once, leaving the workers behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: What a scoring worker imports before its first batch (the stage's modules and the model libraries).
WARM_MODULES = ("aei_batch.scoring.stage", "aei_batch.models.loader")


def _run_score(opts: ScoreOptions, t0: float, early: Any, observer: Any, runtimes: list[Any]) -> RunSummary:
    from aei_batch.models.loader import load_model
    from aei_batch.runtime.adapter import StageSpec
    from aei_batch.runtime.runners import Runtime, auto_batch_size, resolve_runner

    storage.check_access(opts.output)
    refs = list_refs(opts)
    runner = resolve_runner(opts.runner, [r.size for r in refs])
    log.info("runner: %s (--runner %s, %d files)", runner, opts.runner, len(refs))
    rt = early if early is not None and runner == "ray" else Runtime(runner, opts.workers)
    runtimes.append(rt)
    if runner == "ray":
        rt.start_early(warm_modules=WARM_MODULES)  # Ray starts while the model loads
    model = load_model(opts.model_dir, opts.model_name)  # fail fast on a missing/corrupt/mismatched model
    adaptive = _speaker_adaptive(opts, model)
    if runner == "pool":  # pool workers: forks of a driver with the model's libraries imported
        warm = ("aei_batch.features.clip", "warm_up_features", (model.feature_set.id,))
        rt.start_early(warm_modules=WARM_MODULES, warm_call=warm)
    ctx = RunContext.new(
        opts.model_dir,
        model_name=model.name,
        max_file_bytes=int(opts.max_file_mb * 1024 * 1024) if opts.max_file_mb else None,
        max_duration_s=opts.max_duration_s,
        decode_timeout_s=opts.decode_timeout_s or None,
        options={
            "segments": opts.segments.as_dict(),
            "speaker_adaptive": adaptive,
            "min_speaker_files": opts.min_speaker_files
            or int(model.card.options.get("min_speaker_files", 10)),
            "speaker_pattern": opts.speaker_pattern,
            **_video_options(opts, refs),
        },
    )
    router = OutputRouter(_open_sink(opts, ctx), _open_segments_sink(opts, ctx), _open_frames_sink(opts, ctx))
    refs, skipped = _incremental(opts, router.predictions, refs, model.version)
    checkpoint = _Checkpoints(opts, router, model.version)
    refs, resumed = checkpoint.resume(refs)
    skipped += resumed
    counts = _Counts(observer)
    n_files = len(refs)
    observer.started(
        run_id=ctx.run_id,
        source=opts.source,
        output=opts.output,
        model=f"{model.name} {model.version}",
        files=n_files,
    )
    batch_size = opts.batch_size or auto_batch_size([r.size for r in refs])
    bar = _progress(n_files, opts.progress)
    batches = 0
    try:
        with rt, _PendingSpill() as spill:
            table = refs_to_table(refs)
            del refs  # the runner holds the input table now; the FileRef list (~0.4 kB per file) can go
            for out in rt.run(StageSpec(ScoreStage, {"ctx": ctx}), table, batch_size=batch_size):
                if out.pending is not None:
                    spill.write(out.pending)
                router.write(out)
                counts.add(out.predictions)
                checkpoint.after(out.predictions.num_rows)
                bar.update(out.num_files)
                batches += 1
                if batches == 1:
                    _test_pause("after_first_batch")
            rt.close()  # the workers' memory back before the driver finishes the pending rows
            _finish_pending(spill, model, ctx, router, counts)
        if router.rows != n_files:
            raise RuntimeError(f"{n_files} files listed but {router.rows} rows produced; nothing committed")
        _test_pause("before_commit")

        def summary(destination: str) -> RunSummary:
            return RunSummary(
                run_id=ctx.run_id,
                source=opts.source,
                destination=destination,
                files=n_files,
                scored=n_files - counts.errors_total,
                errors=counts.errors_total,
                seconds=time.perf_counter() - t0,
                error_codes=dict(counts.errors),
                emotions=dict(counts.emotions),
                model=f"{model.name} {model.version}",
                max_error_rate=opts.max_error_rate,
                skipped=skipped,
                replaced=router.predictions.replaced,
                model_licence=licence_line(model.card),
            )

        with _storage_failures_are_systemic("committing the run"):
            destination = router.commit(
                properties={**summary(opts.output).snapshot_properties(), **checkpoint.match}
            )
    except BaseException:
        router.abort()
        raise
    finally:
        bar.close()
    return summary(destination)


class _Checkpoints:
    """`--checkpoint-every N`: commit every N rows written (Iceberg tables), so that a run killed at 90% is
    finished by rerunning the same command, which scores only the files no checkpoint has committed yet.

    Checkpoints carry the command's identity (`aei.command`: a hash of the source, the output, the model
    version and the mode); a rerun finds the unfinished runs with the same identity, skips the keys they
    committed, and its final commit marks them complete. Rows whose speaker statistics need the whole run
    (a speaker-adaptive model's clips) are committed at the end."""

    def __init__(self, opts: ScoreOptions, router: OutputRouter, model_version: str) -> None:
        import hashlib

        self.every = int(getattr(opts, "checkpoint_every", 0) or 0)
        self.router = router
        self.model_version = model_version
        self.since = 0
        self.match: dict[str, str] = {}
        if not self.every:
            return
        if not router.can_checkpoint:
            raise ConfigError(
                "--checkpoint-every needs an Iceberg table",
                hint="drop --checkpoint-every, or write an Iceberg table (--table-format iceberg)",
            )
        ident = "\n".join([opts.source, opts.output, model_version, opts.mode])
        self.match = {"aei.command": hashlib.sha256(ident.encode()).hexdigest()[:16]}

    def resume(self, refs: list[FileRef]) -> tuple[list[FileRef], int]:
        """Drop the files that unfinished runs of this command committed; this run finishes those runs."""
        if not self.every:
            return refs, 0
        sink = self.router.predictions
        prev = sink.unfinished_runs(self.match)
        if not prev:
            return refs, 0
        keys = sink.existing_keys(self.model_version, run_ids=prev)
        done = set(zip(keys[COL.uri].to_pylist(), keys[COL.etag].to_pylist(), strict=True))
        todo = [r for r in refs if (r.uri, r.etag) not in done]
        self.router.resume(prev)
        log.warning(
            "resuming %d unfinished run(s) of this command: %d of %d files already committed, "
            "scoring the rest",
            len(prev),
            len(refs) - len(todo),
            len(refs),
        )
        return todo, len(refs) - len(todo)

    def after(self, rows: int) -> None:
        if not self.every:
            return
        self.since += rows
        if self.since >= self.every:
            with _storage_failures_are_systemic("committing a checkpoint"):
                self.router.checkpoint(self.match)
            self.since = 0
            _test_pause("after_checkpoint")


class _Counts:
    """Files written so far, errors by code and emotions (for the summary and the run's metrics)."""

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        self.files = 0
        self.errors: Counter[str] = Counter()
        self.emotions: Counter[str] = Counter()

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def add(self, out: pa.Table) -> None:
        self.files += out.num_rows
        is_err = pc.equal(out[COL.status], STATUS_ERROR)
        self.errors.update(c for c in pc.filter(out[COL.error_code], is_err).to_pylist() if c)
        self.emotions.update(e for e in out[COL.predicted_emotion].to_pylist() if e)
        self.observer.batch_done(out)


class _PendingSpill:
    """Rows waiting for the run's speaker statistics, on local disk (not in the driver's memory), and the
    statistics themselves (sums per speaker group). Batches are gathered into record batches of CHUNK
    rows and written to an Arrow IPC file, read back one record batch at a time. Not Parquet: its
    writer's per-column encoders held about 40 MiB for the 60-odd columns (and a row group per 16-file
    batch had made 1,250 of them for 20,000 files, whose metadata grew the driver by 300 MB)."""

    CHUNK = 512  # 2,048 rows per chunk: the driver 1.19x at 20,000 files against 1,000; 512: 1.07x

    def __init__(self) -> None:
        from aei_batch.scoring.speaker import RunStats

        self.stats = RunStats()
        self.rows = 0
        self._dir: str | None = None
        self._file: Any = None
        self._writer: Any = None
        self._buf: list[pa.Table] = []
        self._buf_rows = 0

    def __enter__(self) -> _PendingSpill:
        return self

    def write(self, pending: pa.Table) -> None:
        import tempfile

        from aei_batch.scoring.stage import gather_stats

        gather_stats(pending, self.stats)
        if self._writer is None:
            self._dir = tempfile.mkdtemp(prefix="aei-pending-")
            self._file = pa.OSFile(f"{self._dir}/pending.arrow", "wb")
            self._writer = pa.ipc.new_file(self._file, pending.schema)
        self._buf.append(pending)
        self._buf_rows += pending.num_rows
        self.rows += pending.num_rows
        if self._buf_rows >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            table = pa.concat_tables(self._buf).combine_chunks()
            self._writer.write_table(table, max_chunksize=table.num_rows)  # one record batch per flush
        self._buf, self._buf_rows = [], 0

    def chunks(self) -> Iterator[pa.Table]:
        """The spilled rows, chunk by chunk; can be read more than once (the first read closes the file)."""
        if self._dir is None:
            return
        if self._writer is not None:
            self._flush()
            self._close()
        with pa.OSFile(f"{self._dir}/pending.arrow", "rb") as src:
            reader = pa.ipc.open_file(src)
            for i in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(i)])

    def _close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._file.close()
            self._writer = None

    def __exit__(self, *exc: Any) -> None:
        import shutil

        self._close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def _finish_pending(
    spill: _PendingSpill, model: Any, ctx: RunContext, router: OutputRouter, counts: _Counts
) -> None:
    """Speaker-adaptive models: predict the clips whose speaker statistics needed the whole run."""
    if not spill.rows:
        return
    from aei_batch.scoring.stage import Predictor, finish_pending, gather_adaptation

    predictor = Predictor(model, ctx)
    own = sum(1 for g in spill.stats.groups.values() if g.n >= predictor.transform.min_files)
    log.info(
        "speaker-adaptive: %d speakers, %d with own statistics (at least %d files)",
        len(spill.stats.groups),
        own,
        predictor.transform.min_files,
    )
    try:
        adaptation = gather_adaptation(spill.chunks(), spill.stats, predictor)  # a first pass when it adapts
    except Exception as exc:  # noqa: BLE001 - the rows are still predicted (and a model failure becomes rows)
        log.warning("speaker adaptation failed (%s: %s): predicting without it", type(exc).__name__, exc)
        adaptation = {}
    if adaptation:
        log.info("speaker-adaptive: class means adapted to %d speaker groups", len(adaptation))
    for chunk in spill.chunks():
        done = finish_pending(chunk, spill.stats, predictor, ctx, adaptation)
        router.write_predictions(done)
        counts.add(done)


@contextlib.contextmanager
def _storage_failures_are_systemic(what: str) -> Iterator[None]:
    """Connection failures while publishing become StorageError (exit 8), not a traceback (exit 1)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise storage.classify_s3_error(exc, what) from None
    except OSError as exc:  # pyarrow's S3 filesystem and local disks raise OSError subclasses
        raise StorageError(
            f"storage failure while {what}: {exc}",
            hint="check the output location; the predictions table was not changed",
        ) from None


def _speaker_adaptive(opts: ScoreOptions, model: Any) -> bool:
    """Speaker-adaptive scoring when the model expects it, unless --no-speaker-adaptive."""
    if opts.speaker_adaptive and not model.speaker_adaptive:
        raise ConfigError(
            f"model {model.name} was not trained in speaker-adaptive mode",
            hint="retrain with `aei-batch train --speaker-adaptive`, or drop the flag",
        )
    return bool(model.speaker_adaptive and opts.speaker_adaptive is not False)


def _catalog(opts: ScoreOptions) -> Any:
    """The Iceberg catalog settings the predictions and segments tables share (None for Parquet)."""
    from aei_batch.io.tables import resolve_catalog

    if opts.table_format != "iceberg":
        return None
    return resolve_catalog(opts.output, catalog_uri=opts.catalog_uri, catalog=opts.catalog, table=opts.table)


def _open_sink(opts: ScoreOptions, ctx: RunContext) -> Any:
    """The run's table sink (opening an Iceberg table fails fast on catalog problems, before scoring)."""
    from aei_batch.io.sinks import open_sink

    return open_sink(**_table_args(opts, ctx))


def _table_args(opts: ScoreOptions, ctx: RunContext) -> dict[str, Any]:
    """Where and how the run's tables are written: the predictions and segments sinks take the same."""
    return {
        "output": opts.output,
        "run_id": ctx.run_id,
        "run_date": ctx.run_date.isoformat(),
        "fmt": opts.table_format,
        "mode": opts.mode,
        "catalog": _catalog(opts),
    }


def _open_segments_sink(opts: ScoreOptions, ctx: RunContext) -> Any:
    """The segments table's sink (format and catalog of the predictions table); None with --segments off."""
    if opts.segments.mode == "off":
        return None
    from aei_batch.io.sinks.segments import open_segments_sink

    return open_segments_sink(**_table_args(opts, ctx))


def _incremental(
    opts: ScoreOptions, sink: Any, refs: list[FileRef], model_version: str
) -> tuple[list[FileRef], int]:
    """With --incremental, drop (on the driver, before fan-out) the files already scored with this model."""
    if not opts.incremental:
        return refs, 0
    from aei_batch.io.tables import filter_unscored, settled_keys

    todo, skipped = filter_unscored(refs, model_version, settled_keys(sink.existing_keys(model_version)))
    log.info(
        "incremental: %d of %d listed files already scored with model %s", skipped, len(refs), model_version
    )
    return todo, skipped


def _video_options(opts: ScoreOptions, refs: list[FileRef]) -> dict[str, Any]:
    from aei_batch.scoring.video import video_run_options

    return video_run_options(opts, [r.uri for r in refs])


def _open_frames_sink(opts: ScoreOptions, ctx: RunContext) -> Any:
    if not opts.frames_table:
        return None
    from aei_batch.io.sinks.frames import FramesSink

    return FramesSink(opts.frames_table, ctx.run_id, ctx.run_date.isoformat())


def _test_pause(point: str) -> None:
    """Test-only hooks (docs/ERRORS.md): AEI_TEST_PAUSE_AFTER_FIRST_BATCH_S / AEI_TEST_PAUSE_BEFORE_COMMIT_S.

    When set (N >= 0) the driver prints `AEI_TEST: <point>` to stderr and sleeps N s there, so a fault
    test can stop the S3 server mid-run or kill the driver before the commit. Unset: no effect.
    """
    import os

    value = os.environ.get(f"AEI_TEST_PAUSE_{point.upper()}_S")
    if value is None or value == "":
        return
    print(f"AEI_TEST: {point} (pausing {float(value):g} s)", file=sys.stderr, flush=True)
    time.sleep(float(value))
