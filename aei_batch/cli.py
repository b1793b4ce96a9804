"""The `aei-batch` command line. Heavy libraries are imported inside commands so `--help` is instant."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from aei_batch import __version__
from aei_batch.errors import AeiError, ExitCode

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
    from aei_batch.security import redact

    try:
        code = fn() or 0
    except AeiError as err:
        typer.secho(f"error: {redact(str(err))}", fg=typer.colors.RED, err=True)
        raise typer.Exit(int(err.exit_code)) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: nothing was committed", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aei-batch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
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


@app.command()
def score(
    source: str = typer.Argument(None, help="A folder, an s3://bucket/prefix, or a manifest (.csv/.parquet, "
                                 "column 'uri'). May come from --config instead."),
    model_dir: str = typer.Option(None, "--model-dir", "-m", help="Model directory (local or s3://)."),
    output: str = typer.Option(None, "--output", "-o", help="Table location (local folder or s3://)."),
    model: str = typer.Option(None, help="Which model of the directory (default: the card's best)."),
    runner: str = typer.Option(None, help="ray (default; local embedded Ray or RAY_ADDRESS) or local (in-process)."),
    table_format: str = typer.Option(None, "--format", help="Table format: parquet."),
    max_error_rate: float = typer.Option(None, help="Exit 3 when the share of error rows passes this (0.10)."),
    max_file_mb: float = typer.Option(None, help="Files larger than this become FILE_TOO_LARGE rows (512)."),
    max_duration_s: float = typer.Option(None, help="Audio longer than this becomes a TOO_LONG row (14400)."),
    extensions: str = typer.Option(None, help="Comma-separated extensions to score (default: audio+video)."),
    batch_size: int = typer.Option(None, help="Files per batch sent to a worker (16)."),
    workers: int = typer.Option(None, help="Actor pool size (default: the cluster's CPUs)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML file with any of these options."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw the progress bar."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score every file under SOURCE into the predictions table at --output."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.errors import ConfigError
        from aei_batch.pipeline import DEFAULT_MAX_ERROR_RATE, ScoreOptions, run_score
        from aei_batch.report import print_run_summary

        cfg = _load_config(config)
        src, mdir, out = _pick(source, cfg, "source", None), _pick(model_dir, cfg, "model_dir", None), _pick(
            output, cfg, "output", None)
        missing = [n for n, v in (("SOURCE", src), ("--model-dir", mdir), ("--output", out)) if not v]
        if missing:
            raise ConfigError(f"missing {', '.join(missing)}", hint="give them on the command line or in --config")
        exts = _pick(extensions, cfg, "extensions", None)
        opts = ScoreOptions(
            source=src, model_dir=mdir, output=out, model_name=_pick(model, cfg, "model", None),
            runner=_pick(runner, cfg, "runner", "ray"), table_format=_pick(table_format, cfg, "format", "parquet"),
            extensions=exts.split(",") if isinstance(exts, str) else exts,
            max_error_rate=float(_pick(max_error_rate, cfg, "max_error_rate", DEFAULT_MAX_ERROR_RATE)),
            max_file_mb=_pick(max_file_mb, cfg, "max_file_mb", 512.0),
            max_duration_s=_pick(max_duration_s, cfg, "max_duration_s", 4 * 3600.0),
            batch_size=int(_pick(batch_size, cfg, "batch_size", 16)), workers=_pick(workers, cfg, "workers", None),
            progress=not no_progress and sys.stderr.isatty() or os.environ.get("AEI_PROGRESS") == "1",
        )
        summary = run_score(opts)
        print_run_summary(summary)
        return int(summary.exit_code)

    _run(body)


@app.command()
def train(
    data: str = typer.Option(..., "--data", "-d", help="Folder or s3:// prefix of RAVDESS-named audio (recursive)."),
    model_dir: str = typer.Option(..., "--model-dir", "-m", help="Where to write the model directory."),
    holdout_actors: str = typer.Option("21-24", help="Actors kept out of training and used to measure accuracy "
                                       "(e.g. 21-24, 17,18,19,20, or none)."),
    feature_set: str = typer.Option("seed_mfcc157", help="Feature set (see docs/FEATURES.md)."),
    models: str = typer.Option("svc,xgboost,random_forest", help="Comma-separated models to train."),
    runner: str = typer.Option("ray", help="ray or local: where feature extraction runs."),
    seed: int = typer.Option(0, help="Random seed (results are reproducible with it)."),
    no_progress: bool = typer.Option(False, "--no-progress"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train models on RAVDESS-named audio, holding out whole actors, and write a model directory."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.report import print_train_summary
        from aei_batch.training.train import TrainOptions, parse_actors, run_train

        opts = TrainOptions(
            data=data, model_dir=model_dir, holdout_actors=parse_actors(holdout_actors), feature_set=feature_set,
            models=tuple(m.strip() for m in models.split(",") if m.strip()), runner=runner, seed=seed,
            progress=not no_progress and sys.stderr.isatty(),
        )
        card = run_train(opts)
        print_train_summary(card, model_dir)
        return 0

    _run(body)


@app.command()
def demo(
    workdir: Path = typer.Option(Path("demo-output"), help="Where the demo writes its corpus, model and table."),
    runner: str = typer.Option("ray", help="ray (embedded local Ray) or local."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Generate a small RAVDESS-named corpus, train on it, score it through local Ray, and show the table."""
    _setup_logging(verbose)

    def body() -> int:
        from aei_batch.demo import run_demo

        return run_demo(workdir, runner=runner)

    _run(body)


if __name__ == "__main__":  # pragma: no cover
    app()
