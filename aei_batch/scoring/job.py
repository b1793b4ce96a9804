"""The scoring job: list -> fan out (decode, features, model) -> one atomic table commit -> summary."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch.config import ScoreOptions
from aei_batch.errors import ConfigError, InputNotFoundError, StorageError
from aei_batch.io import storage
from aei_batch.records import COL, STATUS_ERROR, FileRef
from aei_batch.scoring.stage import RunContext, ScoreStage, refs_to_table
from aei_batch.scoring.summary import RunSummary

log = logging.getLogger(__name__)


def list_refs(source: str, extensions: Iterable[str] | None) -> list[FileRef]:
    refs = list(storage.list_inputs(source, extensions=extensions))
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
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def run_score(opts: ScoreOptions) -> RunSummary:
    """Score every file under `opts.source` into the table at `opts.output`. Raises AeiError subclasses."""
    t0 = time.perf_counter()
    from aei_batch.observe import RunObserver  # observe:

    observer = RunObserver.from_options(opts)  # observe: checks --metrics/--on-complete/--lineage first
    try:
        summary = _run_score(opts, t0, observer)  # observe: (observer argument)
        observer.completed(summary)  # observe:
        return summary
    except BaseException as exc:  # observe:
        observer.failed(observer.run_id, exc)  # observe:
        raise  # observe:
    finally:
        observer.close()  # observe:
        _end_prestart()


def _prestart(runner: str, workers: int | None, feature_set: str | None = None) -> None:
    """Start Ray / the pool's workers in the background while the driver loads the model, lists and opens
    the table: their start-up (seconds) overlaps the driver's own. Ray starts first thing; the pool once
    the model is loaded (`feature_set` known), so that forked workers inherit the model's libraries."""
    if runner == "ray":
        from aei_batch.runtime.ray_backend import prestart_ray

        prestart_ray(workers)
    elif runner == "pool" and feature_set is not None:
        from aei_batch.runtime.pool import prestart_pool

        prestart_pool(workers, feature_set)


def _end_prestart() -> None:
    """After the run: stop pool workers that were started but not used (an error before scoring); wait
    for a Ray start under way, so that Ray's exit handler can stop what it started."""
    if "aei_batch.runtime.pool" in sys.modules:
        from aei_batch.runtime.pool import shutdown_prestarted

        shutdown_prestarted()
    if "aei_batch.runtime.ray_backend" in sys.modules:
        from aei_batch.runtime.ray_backend import wait_prestart

        wait_prestart()


def _licence_line(card: Any) -> str:  # observe: (helper for model_licence)
    from aei_batch.models.model_card import licence_line as line

    return line(card)


def _run_score(opts: ScoreOptions, t0: float, observer: Any) -> RunSummary:  # observe: (observer)
    from aei_batch.models.loader import load_model
    from aei_batch.runtime.runners import auto_batch_size, resolve_runner, run_stage

    if storage.is_s3(opts.output):
        storage.check_s3_access(opts.output)
    _prestart(opts.runner, opts.workers)
    refs = list_refs(opts.source, opts.extensions)
    runner = resolve_runner(opts.runner, [r.size for r in refs])
    log.info("runner: %s (--runner %s, %d files)", runner, opts.runner, len(refs))
    _prestart(runner, opts.workers)  # Ray starts while the model loads
    model = load_model(opts.model_dir, opts.model_name)  # fail fast on a missing/corrupt/mismatched model
    _prestart(runner, opts.workers, model.feature_set.name)  # pool workers: forks of a driver with the model
    ctx = RunContext.new(
        opts.model_dir,
        model_name=model.name,
        max_file_bytes=int(opts.max_file_mb * 1024 * 1024) if opts.max_file_mb else None,
        max_duration_s=opts.max_duration_s,
        decode_timeout_s=opts.decode_timeout_s or None,
        options={"segments": opts.segments.as_dict(), **_video_options(opts, refs)},
    )
    sink = _open_sink(opts, ctx)
    seg_sink = _open_segments_sink(opts, ctx)
    frames_sink = _open_frames_sink(opts, ctx)
    scored_keys: list[pa.Table] = []
    refs, skipped = _incremental(opts, sink, refs, model.version)
    errors: Counter[str] = Counter()
    emotions: Counter[str] = Counter()
    n_files = len(refs)
    observer.started(  # observe:
        run_id=ctx.run_id,
        source=opts.source,
        output=opts.output,
        model=f"{model.name} {model.version}",
        files=n_files,
    )
    batch_size = opts.batch_size or auto_batch_size([r.size for r in refs])
    bar = _progress(n_files, opts.progress)
    try:
        if refs and _two_pass(opts, model):
            outputs = _speaker_adaptive_outputs(opts, ctx, model, refs, batch_size)
        else:
            outputs = (
                run_stage(
                    ScoreStage,
                    {"ctx": ctx},
                    refs_to_table(refs),
                    runner=runner,
                    batch_size=batch_size,
                    workers=opts.workers,
                )
                if refs
                else iter(())
            )
        del refs  # the runner holds the input table now; the FileRef list (~0.4 kB per file) can go
        for out in outputs:  # no refs: --incremental found nothing new; nothing to start
            out = _split_frames(out, frames_sink)
            out = _split_segments(out, seg_sink, scored_keys)
            sink.write(out)
            _count(out, errors, emotions)
            observer.batch_done(out)  # observe:
            bar.update(out.num_rows)
            if sink.rows == out.num_rows:
                _test_pause("after_first_batch")
        if sink.rows != n_files:
            raise RuntimeError(f"{n_files} files listed but {sink.rows} rows produced; nothing committed")
        _test_pause("before_commit")
        with _storage_failures_are_systemic("committing the run"):
            if frames_sink is not None:  # like segments: published before the predictions rows that name them
                frames_sink.commit()
            if seg_sink is not None:  # segments first: readers join them by the predictions rows' run_id
                seg_sink.commit(pa.concat_tables(scored_keys) if scored_keys else None)
            destination = sink.commit()
    except BaseException:
        sink.abort()
        if frames_sink is not None:
            frames_sink.abort()
        if seg_sink is not None:
            seg_sink.abort()
        raise
    finally:
        bar.close()
    n_err = sum(errors.values())
    return RunSummary(
        run_id=ctx.run_id,
        source=opts.source,
        destination=destination,
        files=n_files,
        scored=n_files - n_err,
        errors=n_err,
        seconds=time.perf_counter() - t0,
        error_codes=dict(errors),
        emotions=dict(emotions),
        model=f"{model.name} {model.version}",
        max_error_rate=opts.max_error_rate,
        skipped=skipped,
        replaced=sink.replaced,
        model_licence=_licence_line(model.card),  # observe: (the lead fills it from model.card)
    )


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


def _two_pass(opts: ScoreOptions, model: Any) -> bool:
    """Speaker-adaptive scoring when the model expects it, unless --no-speaker-adaptive."""
    if opts.speaker_adaptive and not model.speaker_adaptive:
        raise ConfigError(
            f"model {model.name} was not trained in speaker-adaptive mode",
            hint="retrain with `aei-batch train --speaker-adaptive`, or drop the flag",
        )
    return bool(model.speaker_adaptive and opts.speaker_adaptive is not False)


def _speaker_adaptive_outputs(
    opts: ScoreOptions, ctx: RunContext, model: Any, refs: list[FileRef], batch_size: int
) -> Any:
    from aei_batch.scoring.speaker_pass import score_two_pass

    min_files = opts.min_speaker_files or int(model.card.options.get("min_speaker_files", 10))
    return score_two_pass(
        ctx,
        model,
        refs,
        runner=opts.runner,
        batch_size=batch_size,
        workers=opts.workers,
        min_speaker_files=min_files,
        speaker_pattern=opts.speaker_pattern,
    )


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


def _split_segments(out: pa.Table, seg_sink: Any, scored_keys: list[pa.Table]) -> pa.Table:
    """Move the stage's segment rows to the segments sink; remember which files this run scored."""
    if seg_sink is None:
        return out
    from aei_batch.io.sinks.segments import split_segments

    out, segs = split_segments(out)
    if segs.num_rows:
        seg_sink.write(segs)
    scored_keys.append(out.select([COL.uri, COL.etag, COL.model_version]))
    return out


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


def _split_frames(out: pa.Table, frames_sink: Any) -> pa.Table:
    """Take the per-frame rows off a stage batch (into the frames table when one was asked for)."""
    from aei_batch.io.sinks.frames import split_frames

    out, frames = split_frames(out)
    if frames is not None and frames_sink is not None:
        frames_sink.write(frames)
    return out


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


def _count(out: pa.Table, errors: Counter[str], emotions: Counter[str]) -> None:
    is_err = pc.equal(out[COL.status], STATUS_ERROR)
    errors.update(c for c in pc.filter(out[COL.error_code], is_err).to_pylist() if c)
    emotions.update(e for e in out[COL.predicted_emotion].to_pylist() if e)
