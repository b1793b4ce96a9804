"""The public Python API: score, train, evaluate, query and read the tables from Python or a notebook.

    import aei_batch

    summary = aei_batch.score("recordings/", model_dir="models/audio-v1", output="warehouse/")
    rows = aei_batch.read_predictions("warehouse/", latest=True, as_pandas=True)

Every function takes the same options, with the same defaults and checks, as the command of the same
name (`aei-batch score --help`): option names are the long flags with `_` for `-` (`max_error_rate`,
`decode_timeout_s`, ...), or the keys of a `--config` YAML, which `config=` also reads (keywords win).
Systemic problems raise an `aei_batch.errors.AeiError` subclass; each carries `exit_code` (the CLI's
exit code) and `hint` (how to fix it). Per-file problems never raise: they are error rows.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aei_batch.config import DEFAULT_RUNNER, SEGMENT_KEYS
from aei_batch.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from aei_batch.models.card import ModelCard
    from aei_batch.scoring.summary import RunSummary

__all__ = ["evaluate", "query", "read_predictions", "read_run_summary", "read_segments", "score", "train"]

#: Option names of `score` that are not ScoreOptions fields: the segment settings (docs/SEGMENTS.md)
#: and the CLI's spellings of two fields.
_SEGMENT_OPTIONS = ("segments", *SEGMENT_KEYS)
_ALIASES = {"format": "table_format", "model": "model_name"}


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stderr (some notebook kernels)
        return False


def _load_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """A `--config` YAML as option names (`-` read as `_`). Raises ConfigError."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _unknown(names: set[str], known: set[str], what: str) -> None:
    if not names:
        return
    name = sorted(names)[0]
    close = difflib.get_close_matches(name, sorted(known), n=1)
    raise ConfigError(
        f"unknown {what} option {name!r}",
        hint=f"did you mean {close[0]!r}?" if close else f"see help(aei_batch.{what})",
    )


def score_options(source: str | None = None, **options: Any) -> Any:
    """The validated `ScoreOptions` for `score(source, **options)` without running anything: the CLI's own
    loader (keywords > ``config=`` YAML > ``AEI_<OPTION>`` environment > defaults) and checks.

    Raises:
        ConfigError: a missing, unknown or invalid option (exit code 4).
    """
    from aei_batch.config import ScoreOptions, load_options

    config = options.pop("config", None)
    for alias, name in _ALIASES.items():
        if alias in options:
            options.setdefault(name, options.pop(alias))
    known = set(ScoreOptions.model_fields) | set(_SEGMENT_OPTIONS)
    _unknown(set(options) - known, known, "score")
    if source is not None:
        options["source"] = str(source)
    exts = options.get("extensions")
    if isinstance(exts, str):
        options["extensions"] = [e.strip() for e in exts.split(",") if e.strip()]
    if options.get("progress") is None:
        options["progress"] = _stderr_is_tty()
    opts = load_options(ScoreOptions, flags=options, config=config)
    for name in ("source", "model_dir", "output"):
        if not getattr(opts, name, None):
            raise ConfigError(f"missing {name}", hint="give it as an argument or in config=")
    return opts


def score(
    source: str | os.PathLike[str] | None = None,
    *,
    model_dir: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    **options: Any,
) -> RunSummary:
    """Score every file under `source` into the predictions table at `output`; return the run's summary.

    Args:
        source: a folder, an ``s3://bucket/prefix`` or a manifest (.csv/.parquet with a ``uri`` column).
        model_dir: a model directory (local or ``s3://``) written by `train`.
        output: the table location (local folder or ``s3://``).
        **options: any option of ``aei-batch score`` by its long name with ``_`` (``runner="pool"``,
            ``format="parquet"``, ``incremental=True``, ``max_error_rate=0.2``, ``segments="off"``,
            ``metrics=":9464"``, ``on_complete=URL``, ...), or ``config="job.yaml"``. ``progress``
            defaults to a bar only when stderr is a terminal.

    Returns:
        RunSummary: files, scored, errors by code, seconds, model, licence; ``summary.exit_code`` is
        what the CLI would exit with (3 when the error share passed ``max_error_rate``). The same facts
        are written to ``<output>/_runs/<run_id>.json``.

    Raises:
        ConfigError: an invalid or unknown option (exit code 4).
        InputNotFoundError: no such folder, bucket or manifest, or no matching files (5).
        CredentialsError: the storage rejected the credentials (6).
        ModelError: the model directory is missing, corrupt or trained on other features (7).
        StorageError: the storage failed after retries; nothing was committed (8).
    """
    from aei_batch.scoring.job import run_score

    if options.get("log_format") is not None:  # asked for explicitly: set up the root logger (as the CLI)
        from aei_batch.observe.logs import configure_logging

        configure_logging(options["log_format"])
    opts = score_options(
        str(source) if source is not None else None,
        model_dir=str(model_dir) if model_dir is not None else None,
        output=str(output) if output is not None else None,
        **options,
    )
    return run_score(opts)


def train(
    data: str | os.PathLike[str],
    *,
    model_dir: str | os.PathLike[str],
    holdout_actors: str | list[int] | None = "21-24",
    feature_set: str | None = None,
    models: str | list[str] | tuple[str, ...] | None = None,
    speaker_adaptive: bool | None = None,
    min_speaker_files: int = 10,
    search: bool = False,
    cache_dir: str | None = None,
    runner: str = DEFAULT_RUNNER,
    seed: int = 0,
    modality: str = "auto",
    audio_model_dir: str | None = None,
    frame_every: int = 20,
    epochs: int | None = None,
    progress: bool | None = None,
) -> ModelCard:
    """Train on RAVDESS-named audio (or video) under `data`, holding out whole actors; write `model_dir`.

    Defaults are those of ``aei-batch train``: the best audio setup (``voice_audio`` features, the
    ``blend`` ensemble, speaker-adaptive, trained with telephone copies and crops) for audio, face
    models for video. The model directory gets
    ``card.json`` (with the licence the training data imposes) and ``MODEL_CARD.md``.

    Returns:
        ModelCard: held-out accuracy per model (``card.models[name].heldout``), ``card.licence``,
        ``card.use``.

    Raises:
        ConfigError: bad actors, unknown model or feature set names, too few classes (exit code 4).
        InputNotFoundError: no labelled files under `data` (5).
        StorageError / CredentialsError: `data` on S3 cannot be read (8 / 6).
    """
    from aei_batch.training.train import TrainOptions, audio_defaults, parse_actors

    if isinstance(holdout_actors, str) or holdout_actors is None:
        actors = parse_actors(holdout_actors)
    else:
        actors = parse_actors(",".join(str(int(a)) for a in holdout_actors))
    names = ",".join(models) if isinstance(models, list | tuple) else models
    fs, mods, sa = audio_defaults(str(data), modality, feature_set, names, speaker_adaptive)
    from aei_batch.training.train import run_train

    return run_train(
        TrainOptions(
            data=str(data),
            model_dir=str(model_dir),
            holdout_actors=actors,
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
            progress=_stderr_is_tty() if progress is None else progress,
        )
    )


def evaluate(
    data: str | os.PathLike[str] | None = None,
    *,
    model_dir: str | None = None,
    predictions: str | None = None,
    cv: bool = False,
    report_dir: str = "eval-report",
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """Accuracy, UAR, macro-F1, per-class recall, per-actor accuracy, 95% CI and ECE, as ``evaluate``.

    Exactly one of `model_dir` (a model on labelled `data`), `cv=True` (actor-grouped cross-validation
    of a training setup on `data`) or `predictions` (a predictions table with labels). Other options:
    ``model``, ``table_format``, ``feature_set``, ``models``, ``speaker_adaptive``, ``min_speaker_files``,
    ``folds``, ``seed``, ``runner``, ``cache_dir``; with `model_dir` also ``telephone`` and ``windows``
    (both on: the files as telephone copies, generated calls scored window by window), ``window_s``,
    ``hop_s`` and ``call_clips``. Writes ``metrics.json`` and PNGs to `report_dir`.

    Returns:
        dict: one report per model name.

    Raises:
        ConfigError: not exactly one mode, or an invalid option (exit code 4).
        InputNotFoundError: no labelled files or no table (5).
        ModelError: an unusable model directory (7).
    """
    from aei_batch.training.evaluate import EvalOptions, run_evaluate

    if "model" in options:
        options["model_name"] = options.pop("model")
    if isinstance(options.get("models"), str):
        options["models"] = tuple(m.strip() for m in options["models"].split(",") if m.strip())
    _unknown(set(options) - set(EvalOptions.model_fields), set(EvalOptions.model_fields), "evaluate")
    opts = EvalOptions(
        report_dir=report_dir,
        data=str(data) if data is not None else None,
        model_dir=model_dir,
        cv=cv,
        predictions=predictions,
        **options,
    )
    return run_evaluate(opts)


def _as(table: pa.Table, as_pandas: bool) -> Any:
    return table.to_pandas() if as_pandas else table


def _latest(t: pa.Table) -> pa.Table:
    """One row per (uri, model_version): the newest run's (the `latest` view of `aei-batch query`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from aei_batch.records import COL

    if not t.num_rows:
        return t
    t = t.sort_by([(COL.scored_at, "descending"), (COL.run_id, "descending")])
    t = t.append_column("__i", pa.array(range(t.num_rows), pa.int64()))
    first = t.group_by([COL.uri, COL.model_version], use_threads=False).aggregate([("__i", "min")])
    keep = pc.is_in(t["__i"], value_set=first["__i_min"])
    return t.filter(keep).drop_columns(["__i"]).sort_by([(COL.uri, "ascending")])


def read_predictions(
    output: str | os.PathLike[str],
    *,
    table_format: str = "iceberg",
    catalog_uri: str | None = None,
    catalog: Mapping[str, Any] | None = None,
    table: str | None = None,
    run_id: str | None = None,
    latest: bool = False,
    as_pandas: bool = False,
) -> Any:
    """The predictions table at `output` as a pyarrow Table (or a pandas DataFrame with `as_pandas`).

    `run_id` keeps one run's rows; `latest` keeps one row per (uri, model_version), the newest (what
    the `latest` view of ``aei-batch query`` shows). An empty table when nothing was written yet.

    Raises:
        ConfigError: an unknown `table_format` or bad catalog settings (exit code 4).
        CredentialsError / StorageError: the table's storage cannot be read (6 / 8).
    """
    import pyarrow.compute as pc

    from aei_batch.io.sinks import read_predictions as read
    from aei_batch.records import COL

    t = read(str(output), table_format, catalog_uri=catalog_uri, catalog=catalog, table=table)
    if run_id is not None:
        t = t.filter(pc.equal(t[COL.run_id], run_id))
    if latest:
        t = _latest(t)
    return _as(t, as_pandas)


def read_segments(
    output: str | os.PathLike[str],
    *,
    table_format: str = "iceberg",
    catalog_uri: str | None = None,
    uri: str | None = None,
    run_id: str | None = None,
    latest: bool = True,
    as_pandas: bool = False,
) -> Any:
    """The segments table (per-window timelines of long files, docs/SEGMENTS.md) beside `output`.

    `uri` keeps one file, `run_id` one run; otherwise `latest` keeps each file's newest run.

    Raises:
        ConfigError: an unknown `table_format` (exit code 4).
        CredentialsError / StorageError: the table's storage cannot be read (6 / 8).
    """
    from aei_batch.io.sinks.segments import read_segments as read
    from aei_batch.io.tables import resolve_catalog, validate_format

    validate_format(table_format)
    catalog = resolve_catalog(str(output), catalog_uri=catalog_uri) if table_format == "iceberg" else None
    t = read(str(output), table_format, uri=uri, run_id=run_id, latest=latest, catalog=catalog)
    return _as(t, as_pandas)


def query(
    sql: str,
    *,
    output: str | os.PathLike[str],
    table_format: str = "iceberg",
    catalog_uri: str | None = None,
    catalog: Mapping[str, Any] | None = None,
    table: str | None = None,
    as_pandas: bool = False,
) -> Any:
    """Read-only DuckDB SQL over the views ``predictions`` and ``latest`` (as ``aei-batch query``).

    Raises:
        ConfigError: not a read-only SELECT/WITH, or the query failed (exit code 4).
        InputNotFoundError: no table at `output` (5).
    """
    from aei_batch.io.query import QueryOptions, run_query

    opts = QueryOptions(
        output=str(output),
        table_format=table_format,
        catalog_uri=catalog_uri,
        catalog=dict(catalog) if catalog is not None else None,
        table=table,
    )
    return _as(run_query(sql, opts), as_pandas)


def read_run_summary(output: str | os.PathLike[str], run_id: str | None = None) -> dict[str, Any]:
    """The JSON summary a run wrote beside its table (`<output>/_runs/<run_id>.json`; default: newest).

    Raises:
        InputNotFoundError: no run summary there (exit code 5).
    """
    from aei_batch.observe.runfile import read_run_summary as read

    return read(str(output), run_id)
