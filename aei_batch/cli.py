"""The `aei-batch` command line. Heavy libraries are imported inside commands so `--help` is instant."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from aei_batch import __version__
from aei_batch.errors import AeiError

# Arrow buffers from the C library's allocator, not mimalloc (pyarrow's default): mimalloc keeps freed pages
# mapped, so the driver's resident memory kept the high-water mark of every commit and grew with the number
# of files (bench/bench_scale.py: 1.31x from 1,000 to 20,000 files with mimalloc, 1.18x with this).
# Set before pyarrow is imported; an explicit ARROW_DEFAULT_MEMORY_POOL wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

app = typer.Typer(
    name="aei-batch",
    help="Read emotion from speech (and faces) in many files at once: Ray fans out, a table collects one row "
    "per file.\n\nExit codes: 0 ok, 3 error share over --max-error-rate, 4 bad configuration, 5 input not "
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
        if "aei_batch.runtime.ray_backend" in sys.modules:  # an embedded Ray this command started
            from aei_batch.runtime.ray_backend import shutdown_owned

            shutdown_owned()
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


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    from aei_batch.errors import ConfigError

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _pick(cli_value: Any, config: dict[str, Any], key: str, default: Any) -> Any:
    return cli_value if cli_value is not None else config.get(key, default)


def _optional_int(value: Any) -> int | None:
    """An integer option that may be absent (None: its automatic default)."""
    return None if value is None else int(value)


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
    runner: str = typer.Option(
        None,
        help="auto (default: Ray when RAY_ADDRESS names a cluster; otherwise in-process "
        "under 200 files and 64 MiB, the pool under 10,000 files and 2 GiB, an embedded local Ray "
        "beyond), ray (RAY_ADDRESS's cluster or an embedded local Ray), pool (one process per CPU of "
        "this machine, no Ray: fastest on one machine) or local (in-process); docs/PERFORMANCE.md.",
    ),
    table_format: str = typer.Option(
        None,
        "--format",
        help="Table format: iceberg (default; one atomic "
        "commit per run) or parquet (Hive-partitioned files); docs/TABLES.md.",
    ),
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
    catalog_uri: str = typer.Option(
        None,
        "--catalog-uri",
        help="Iceberg catalog: a SQLAlchemy URI (sqlite:///,"
        " postgresql://) or a REST URL (default: $AEI_CATALOG_URI, the config's "
        "catalog: block, else an embedded sqlite file).",
    ),
    table: str = typer.Option(None, "--table", help="Iceberg table identifier (aei.predictions)."),
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
    workers: int = typer.Option(None, help="Actor pool size (default: the cluster's CPUs)."),
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
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with any of these options."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score every file under SOURCE into the predictions table at --output."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.config import (
            DEFAULT_DECODE_TIMEOUT_S,
            DEFAULT_MAX_DURATION_S,
            DEFAULT_MAX_ERROR_RATE,
            ScoreOptions,
        )
        from aei_batch.errors import ConfigError
        from aei_batch.report import print_run_summary
        from aei_batch.scoring.job import run_score
        from aei_batch.scoring.windows import segment_config

        cfg = _load_config(config)
        seg = segment_config(
            cfg,
            mode=segments,
            window_s=window_s,
            hop_s=hop_s,
            per_channel=per_channel,
            vad_floor_db=vad_floor_db,
            vad_rel_db=vad_rel_db,
            min_speech_share=min_speech_share,
        )
        src, mdir, out = (
            _pick(source, cfg, "source", None),
            _pick(model_dir, cfg, "model_dir", None),
            _pick(output, cfg, "output", None),
        )
        missing = [n for n, v in (("SOURCE", src), ("--model-dir", mdir), ("--output", out)) if not v]
        if missing:
            raise ConfigError(
                f"missing {', '.join(missing)}", hint="give them on the command line or in --config"
            )
        exts = _pick(extensions, cfg, "extensions", None)
        opts = ScoreOptions(
            source=src,
            model_dir=mdir,
            output=out,
            model_name=_pick(model, cfg, "model", None),
            runner=_pick(runner, cfg, "runner", "auto"),
            table_format=_pick(table_format, cfg, "format", "iceberg"),
            extensions=exts.split(",") if isinstance(exts, str) else exts,
            max_error_rate=float(_pick(max_error_rate, cfg, "max_error_rate", DEFAULT_MAX_ERROR_RATE)),
            max_file_mb=_pick(max_file_mb, cfg, "max_file_mb", 512.0),
            max_duration_s=_pick(max_duration_s, cfg, "max_duration_s", DEFAULT_MAX_DURATION_S),
            decode_timeout_s=_pick(decode_timeout_s, cfg, "decode_timeout_s", DEFAULT_DECODE_TIMEOUT_S),
            batch_size=_optional_int(_pick(batch_size, cfg, "batch_size", None)),
            workers=_pick(workers, cfg, "workers", None),
            mode=_pick(mode, cfg, "mode", "merge"),
            incremental=bool(_pick(incremental, cfg, "incremental", False)),
            catalog_uri=_pick(catalog_uri, cfg, "catalog_uri", None),
            catalog=_catalog_block(cfg),
            table=_pick(table, cfg, "table", None),
            segments=seg,
            video_model=_pick(video_model, cfg, "video_model", "pretrained-fer"),
            frame_every=int(_pick(frame_every, cfg, "frame_every", 20)),
            frame_fps=_pick(frame_fps, cfg, "frame_fps", None),
            frames_table=_pick(frames_table, cfg, "frames_table", None),
            audio_weight=_pick(audio_weight, cfg, "audio_weight", None),
            speaker_adaptive=_pick(speaker_adaptive, cfg, "speaker_adaptive", None),
            min_speaker_files=_pick(min_speaker_files, cfg, "min_speaker_files", None),
            speaker_pattern=_pick(speaker_pattern, cfg, "speaker_pattern", None),
            progress=not no_progress and sys.stderr.isatty() or os.environ.get("AEI_PROGRESS") == "1",
        )
        summary = run_score(opts)
        print_run_summary(summary)
        return int(summary.exit_code)

    _run(body)


def _catalog_block(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The `catalog:` block of a --config YAML: pyiceberg catalog properties (see docs/TABLES.md)."""
    from aei_batch.errors import ConfigError

    block = cfg.get("catalog")
    if block is not None and not isinstance(block, dict):
        raise ConfigError("the catalog: block of --config must be a mapping of pyiceberg catalog properties")
    return block


@app.command()
def query(
    sql: str = typer.Argument(..., help="Read-only DuckDB SQL (SELECT/WITH); views: predictions, latest."),
    output: str = typer.Option(
        None, "--output", "-o", help="Table location given to `score` (folder or s3://)."
    ),
    out_format: str = typer.Option("table", "--format", help="table (default), csv or json."),
    table_format: str = typer.Option(None, "--table-format", help="iceberg (default) or parquet."),
    catalog_uri: str = typer.Option(None, "--catalog-uri", help="Iceberg catalog URI, as for `score`."),
    table: str = typer.Option(None, "--table", help="Iceberg table identifier (aei.predictions)."),
    max_rows: int = typer.Option(1000, help="Most rows printed by --format table (csv/json print all)."),
    config: Path = typer.Option(None, "--config", "-c", help="The YAML given to `score` (output, catalog)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run read-only SQL over the predictions table with DuckDB (views `predictions` and `latest`)."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.errors import ConfigError
        from aei_batch.io.query import QueryOptions, print_result, run_query

        cfg = _load_config(config)
        out = _pick(output, cfg, "output", None)
        if not out:
            raise ConfigError("missing --output", hint="give the table location used by `aei-batch score`")
        opts = QueryOptions(
            output=out,
            table_format=_pick(table_format, cfg, "format", "iceberg"),
            catalog_uri=_pick(catalog_uri, cfg, "catalog_uri", None),
            catalog=_catalog_block(cfg),
            table=_pick(table, cfg, "table", None),
        )
        print_result(run_query(sql, opts), out_format, max_rows=max_rows)
        return 0

    _run(body)


@app.command()
def timeline(
    uri: str = typer.Argument(
        ..., help="The file, as scored (its uri, absolute path, or a unique path suffix)."
    ),
    table_location: str = typer.Option(..., "--table", "-t", help="The table location of `score --output`."),
    out: str = typer.Option(None, "--out", help="PNG to write (default: <file name>.timeline.png here)."),
    table_format: str = typer.Option("iceberg", "--format", help="iceberg (default) or parquet."),
    run_id: str = typer.Option(None, "--run-id", help="Draw this run's segments (default: the newest run)."),
    catalog_uri: str = typer.Option(None, "--catalog-uri", help="Iceberg catalog URI, as for `score`."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Draw a file's emotion timeline (per window, per channel) from the segments table to a PNG."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.io.tables import resolve_catalog, validate_format
        from aei_batch.timeline import run_timeline

        validate_format(table_format)
        iceberg = table_format == "iceberg"
        catalog = resolve_catalog(table_location, catalog_uri=catalog_uri) if iceberg else None
        png, rows = run_timeline(uri, table_location, out, fmt=table_format, run_id=run_id, catalog=catalog)
        typer.echo(f"{png}  ({rows.num_rows} segments)")
        return 0

    _run(body)


@app.command()
def train(
    data: str = typer.Option(
        ..., "--data", "-d", help="Folder or s3:// prefix of RAVDESS-named audio (recursive)."
    ),
    model_dir: str = typer.Option(..., "--model-dir", "-m", help="Where to write the model directory."),
    holdout_actors: str = typer.Option(
        "21-24",
        help="Actors kept out of training and used to measure accuracy (e.g. 21-24, 17,18,19,20, or none).",
    ),
    feature_set: str = typer.Option(
        None, help="Feature set (docs/FEATURES.md; default rich_audio for audio)."
    ),
    models: str = typer.Option(
        None,
        help="Comma-separated models (docs/MODELS.md; audio default: "
        "ensemble,lda_calibrated,lda_shrunk,svc_tuned; seed study: svc,xgboost,random_forest).",
    ),
    speaker_adaptive: bool = typer.Option(
        None,
        "--speaker-adaptive/--no-speaker-adaptive",
        help="Train on per-speaker z-scored features (audio default: on).",
    ),
    min_speaker_files: int = typer.Option(
        10, help="Speaker-adaptive: speakers with fewer files use global statistics."
    ),
    search: bool = typer.Option(
        False,
        "--search/--no-search",
        help="Actor-grouped hyperparameter search on Ray before the final fit (docs/MODELS.md).",
    ),
    cache_dir: str = typer.Option(None, help="Cache featurised corpora here (.npz keyed by feature hash)."),
    runner: str = typer.Option("ray", help="ray or local: where feature extraction runs."),
    seed: int = typer.Option(0, help="Random seed (results are reproducible with it)."),
    modality: str = typer.Option(
        "auto",
        help="audio, video (face models on RAVDESS-named .mp4: face_cnn, "
        "fer_transfer) or auto (audio when labelled audio exists); docs/VIDEO.md.",
    ),
    audio_model_dir: str = typer.Option(
        None,
        help="Video: an audio model directory used to fit the "
        "audio-video fusion weight on the held-out actors.",
    ),
    frame_every: int = typer.Option(20, help="Video: keep every N-th frame."),
    epochs: int = typer.Option(None, help="Video: training epochs (face_cnn 12, fer_transfer 8)."),
    no_progress: bool = typer.Option(False, "--no-progress"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train models on RAVDESS-named audio (or video), holding out whole actors; write a model directory."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.report import print_train_summary
        from aei_batch.training.train import TrainOptions, audio_defaults, parse_actors, run_train

        fs, mods, sa = audio_defaults(data, modality, feature_set, models, speaker_adaptive)
        opts = TrainOptions(
            data=data,
            model_dir=model_dir,
            holdout_actors=parse_actors(holdout_actors),
            feature_set=fs,
            models=mods,
            runner=runner,
            seed=seed,
            modality=modality,
            audio_model_dir=audio_model_dir,
            frame_every=frame_every,
            epochs=epochs,
            speaker_adaptive=sa,
            min_speaker_files=min_speaker_files,
            search=search,
            cache_dir=cache_dir,
            progress=not no_progress and sys.stderr.isatty(),
        )
        card = run_train(opts)
        print_train_summary(card, model_dir)
        return 0

    _run(body)


@app.command()
def evaluate(
    data: str = typer.Argument(None, help="Labelled RAVDESS-named audio (folder, s3:// prefix or manifest)."),
    model_dir: str = typer.Option(None, "--model-dir", "-m", help="Evaluate this model directory on DATA."),
    model: str = typer.Option(None, help="Which model of the directory (default: the card's)."),
    cv: bool = typer.Option(False, "--cv", help="Actor-grouped cross-validation of a training setup."),
    predictions: str = typer.Option(None, help="Evaluate a predictions table (with label_emotion) instead."),
    table_format: str = typer.Option(
        "parquet", "--format", help="Format of --predictions: parquet or iceberg."
    ),
    report_dir: str = typer.Option(
        "eval-report", "--report-dir", "-o", help="Where metrics.json and PNGs go."
    ),
    feature_set: str = typer.Option("rich_audio", help="--cv: feature set."),
    models: str = typer.Option("ensemble", help="--cv: comma-separated models."),
    speaker_adaptive: bool = typer.Option(
        True, "--speaker-adaptive/--no-speaker-adaptive", help="--cv: per-speaker normalisation."
    ),
    min_speaker_files: int = typer.Option(10, help="--cv: speakers under this use global statistics."),
    folds: int = typer.Option(5, help="--cv: number of actor-grouped folds."),
    seed: int = typer.Option(0, help="--cv: random seed."),
    runner: str = typer.Option("ray", help="ray or local: where feature extraction runs."),
    cache_dir: str = typer.Option(None, help="Cache featurised corpora here (.npz keyed by feature hash)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Measure accuracy, UAR, macro-F1, per-class and per-actor accuracy, 95% CI and ECE; write a report."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.training.evaluate import EvalOptions, print_reports, run_evaluate

        opts = EvalOptions(
            report_dir=report_dir,
            data=data,
            model_dir=model_dir,
            model_name=model,
            cv=cv,
            predictions=predictions,
            table_format=table_format,
            feature_set=feature_set,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            speaker_adaptive=speaker_adaptive,
            min_speaker_files=min_speaker_files,
            folds=folds,
            seed=seed,
            runner=runner,
            cache_dir=cache_dir,
        )
        print_reports(run_evaluate(opts), report_dir)
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

        return submit(
            SubmitOptions(
                command=command,
                args=list(ctx.args),
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
