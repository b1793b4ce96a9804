"""The scoring job: list -> fan out (decode, features, model) -> one atomic table commit -> summary."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aei_batch import storage
from aei_batch.errors import ConfigError, ExitCode, InputNotFoundError
from aei_batch.records import COL, STATUS_ERROR, FileRef
from aei_batch.stages import RunContext, ScoreStage, refs_to_table

log = logging.getLogger(__name__)

DEFAULT_MAX_ERROR_RATE = 0.10


@dataclass
class ScoreOptions:
    """Everything `aei-batch score` takes, validated at construction."""

    source: str
    model_dir: str
    output: str
    model_name: str | None = None
    runner: str = "ray"
    table_format: str = "parquet"
    extensions: list[str] | None = None
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_file_mb: float | None = 512.0
    max_duration_s: float | None = 4 * 3600.0
    batch_size: int = 16
    workers: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise ConfigError(f"--max-error-rate must be between 0 and 1, got {self.max_error_rate}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_file_mb is not None and self.max_file_mb <= 0:
            raise ConfigError(f"--max-file-mb must be positive, got {self.max_file_mb}")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ConfigError(f"--max-duration-s must be positive, got {self.max_duration_s}")
        if self.runner not in ("ray", "local"):
            raise ConfigError(f"unknown runner {self.runner!r}", hint="use --runner ray or --runner local")
        if self.table_format not in ("parquet",):
            raise ConfigError(f"unknown table format {self.table_format!r}", hint="use --format parquet")
        if self.extensions:
            self.extensions = [e if e.startswith(".") else f".{e}" for e in self.extensions]


@dataclass
class RunSummary:
    run_id: str
    source: str
    destination: str
    files: int
    scored: int
    errors: int
    seconds: float
    error_codes: dict[str, int] = field(default_factory=dict)
    emotions: dict[str, int] = field(default_factory=dict)
    model: str = ""
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.files if self.files else 0.0

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ERROR_RATE if self.error_rate > self.max_error_rate else ExitCode.OK


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

    return tqdm(total=total, unit="file", desc="scoring", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def run_score(opts: ScoreOptions) -> RunSummary:
    """Score every file under `opts.source` into the table at `opts.output`. Raises AeiError subclasses."""
    from aei_batch.models.loader import load_model
    from aei_batch.runners import run_stage
    from aei_batch.sinks.parquet import ParquetSink

    t0 = time.perf_counter()
    if storage.is_s3(opts.output):
        storage.check_s3_access(opts.output)
    model = load_model(opts.model_dir, opts.model_name)  # fail fast on a missing/corrupt/mismatched model
    refs = list_refs(opts.source, opts.extensions)
    ctx = RunContext.new(
        opts.model_dir,
        model_name=model.name,
        max_file_bytes=int(opts.max_file_mb * 1024 * 1024) if opts.max_file_mb else None,
        max_duration_s=opts.max_duration_s,
    )
    sink = ParquetSink(opts.output, ctx.run_id, ctx.run_date.isoformat())
    errors: Counter[str] = Counter()
    emotions: Counter[str] = Counter()
    bar = _progress(len(refs), opts.progress)
    try:
        for out in run_stage(ScoreStage, {"ctx": ctx}, refs_to_table(refs), runner=opts.runner,
                             batch_size=opts.batch_size, workers=opts.workers):
            sink.write(out)
            _count(out, errors, emotions)
            bar.update(out.num_rows)
        if sink.rows != len(refs):
            raise RuntimeError(f"{len(refs)} files listed but {sink.rows} rows produced; nothing committed")
        destination = sink.commit()
    except BaseException:
        sink.abort()
        raise
    finally:
        bar.close()
    n_err = sum(errors.values())
    return RunSummary(
        run_id=ctx.run_id, source=opts.source, destination=destination, files=len(refs), scored=len(refs) - n_err,
        errors=n_err, seconds=time.perf_counter() - t0, error_codes=dict(errors), emotions=dict(emotions),
        model=f"{model.name} {model.version}", max_error_rate=opts.max_error_rate,
    )


def _count(out: pa.Table, errors: Counter[str], emotions: Counter[str]) -> None:
    is_err = pc.equal(out[COL.status], STATUS_ERROR)
    errors.update(c for c in pc.filter(out[COL.error_code], is_err).to_pylist() if c)
    emotions.update(e for e in out[COL.predicted_emotion].to_pylist() if e)
