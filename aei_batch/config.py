"""The options of every command: one typed model each, their defaults, and the one loader that fills them.

Each command (`score`, `train`, `evaluate`, `query`, `timeline`, `submit`) has a pydantic model below. A
model validates at construction, so job code and tests build one with keyword arguments and read its
attributes; a bad value raises `ConfigError` (exit 4) naming the option and the value, never a pydantic
traceback.

`load_options` is the one loader every command uses. Precedence, highest first:

1. flags given on the command line (an option left out does not count),
2. the `--config` YAML file (keys are the option names: `model_dir` or `model-dir`),
3. the environment: `AEI_<FIELD>` (`AEI_BATCH_SIZE=32`, `AEI_RUNNER=pool`; lists are comma-separated),
4. the defaults declared here.

Unknown YAML keys are refused with the known ones listed (`query` and `timeline` also accept, and ignore,
the keys of `score`: they read the same file to find the table). docs/CONFIG.md lists every option.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aei_batch.errors import ConfigError
from aei_batch.scoring.windows import SEGMENT_OPTIONS, SegmentConfig

DEFAULT_MAX_ERROR_RATE = 0.10
#: Longer audio becomes a TOO_LONG row. Long files are decoded and featurised in chunks (segments), so
#: memory does not grow with duration; with --segments off a worker holds the whole file (docs/ERRORS.md).
DEFAULT_MAX_DURATION_S = 4 * 3600.0
DEFAULT_DECODE_TIMEOUT_S = 120.0
DEFAULT_MAX_FILE_MB = 512.0
DEFAULT_RUNNER = "auto"
DEFAULT_TABLE_FORMAT = "iceberg"  # = aei_batch.io.tables.DEFAULT_FORMAT (not imported: keeps this light)

RUNNERS = ("auto", "ray", "pool", "local")
LOG_FORMATS = ("text", "json")
QUERY_OUTPUT_FORMATS = ("table", "csv", "json")
MODALITIES = ("auto", "audio", "video")

# `train`: the held-out actors, and the model lists (docs/MODELS.md).
DEFAULT_HOLDOUT = (21, 22, 23, 24)
SEED_MODEL_NAMES = ("svc", "xgboost", "random_forest")
BEST_FEATURE_SET = "voice_audio"
BEST_MODELS = ("blend",)  # docs/MODELS.md: members, weights and temperature chosen inside the training data

ENV_PREFIX = "AEI_"
#: Where each value being validated came from (set by `load_options`, read by the error message).
_ORIGINS: ContextVar[Mapping[str, str] | None] = ContextVar("aei_config_origins", default=None)
#: The segment options of `score`, flat in the YAML and on the command line (`segments` is the mode).
SEGMENT_KEYS = SEGMENT_OPTIONS


def deprecated(message: str) -> None:
    """A one-line warning on stderr for an old spelling that still works."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)


def _split(value: Any) -> Any:
    """'a,b' -> ['a', 'b'] (a comma-separated flag, env var or YAML string); anything else unchanged."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def parse_actors(text: str | None) -> list[int]:
    """'21-24' / '17,18,19,20' / '21-22,24' / 'none' -> actor ids."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    actors: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                actors.extend(range(lo, hi + 1))
            else:
                actors.append(int(part))
        except ValueError:
            raise ConfigError(
                f"cannot parse actors {text!r}", hint="use e.g. 21-24, or 17,18,19,20, or none"
            ) from None
    if any(not 1 <= a <= 99 for a in actors):
        raise ConfigError(f"actor ids must be 1-99, got {text!r}")
    return sorted(set(actors))


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {option} {value!r}", hint=f"use one of: {', '.join(allowed)}")


def _at_least(option: str, value: float | None, low: float) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{option} must be at least {low:g}, got {value!r}")


def check_not_a_file(option: str, location: str | None) -> None:
    """A table location (local folder or s3://) must not name an existing plain file."""
    if location and "://" not in location and os.path.isfile(location):
        raise ConfigError(
            f"{option} {location} is a file, not a table folder",
            hint="give a folder (it is created if missing) or an s3:// prefix",
        )


class Options(BaseModel):
    """Common behaviour: unknown keywords refused, pydantic errors turned into ConfigError."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    #: field -> how the user spells it on the command line (default: --field-name).
    FLAGS: ClassVar[dict[str, str]] = {}

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise options_error(exc, type(self), _ORIGINS.get()) from None

    @classmethod
    def flag(cls, name: str) -> str:
        return cls.FLAGS.get(name, "--" + name.replace("_", "-"))

    @classmethod
    def config_keys(cls) -> set[str]:
        """The keys a --config file may hold for this command."""
        return set(cls.model_fields) | set(cls.extra_keys())

    @classmethod
    def extra_keys(cls) -> dict[str, str]:
        """Extra YAML keys -> the field they set (spellings kept for old configs)."""
        return {}


def options_error(
    exc: ValidationError, cls: type[Options], origins: Mapping[str, str] | None = None
) -> ConfigError:
    """One readable ConfigError for a pydantic ValidationError: option, value, what was expected."""
    parts: list[str] = []
    missing: list[str] = []
    for err in exc.errors(include_url=False):
        loc = [str(x) for x in err.get("loc", ())]
        field = loc[0] if loc else "?"
        if err.get("type") == "missing":
            missing.append(cls.flag(field))
            continue
        if err.get("type") == "extra_forbidden":
            parts.append(f"unknown option {field!r} for {cls.__name__}")
            continue
        where = (origins or {}).get(field)
        label = cls.flag(field) + (f" ({where})" if where else "")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{label}: {err.get('input')!r} is not valid: {msg}")
    if missing and not parts:
        return ConfigError(
            f"missing {', '.join(missing)}", hint="give them on the command line or in --config"
        )
    if missing:
        parts.insert(0, f"missing {', '.join(missing)}")
    hint = "fix the value (see `aei-batch COMMAND --help` or docs/CONFIG.md)"
    return ConfigError("; ".join(parts), hint=hint)


class ScoreOptions(Options):
    """Everything `aei-batch score` takes, validated at construction."""

    FLAGS: ClassVar[dict[str, str]] = {
        "source": "SOURCE",
        "model_name": "--model",
        "progress": "--no-progress",
        "speaker_adaptive": "--speaker-adaptive",
        "allowed_roots": "--allow-root",
    }

    source: str
    model_dir: str
    output: str
    model_name: str | None = None
    runner: str = DEFAULT_RUNNER  # auto | ray | pool | local (aei_batch.runtime.runners.resolve_runner)
    table_format: str = DEFAULT_TABLE_FORMAT  # iceberg | parquet (aei_batch.io.tables.FORMATS)
    mode: str = "merge"  # merge | overwrite-run-date (aei_batch.io.tables.MODES)
    incremental: bool = False  # score only files whose (uri, etag, model_version) is not in the table yet
    catalog_uri: str | None = None  # Iceberg catalog URI (else AEI_CATALOG_URI, catalog.uri, embedded sqlite)
    catalog: dict[str, Any] | None = None  # pyiceberg catalog properties (the `catalog:` block of --config)
    table: str | None = None  # Iceberg table identifier (default aei.predictions)
    extensions: list[str] | None = None
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_file_mb: float | None = DEFAULT_MAX_FILE_MB
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S
    decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S
    batch_size: int | None = None  # None: aei_batch.runtime.runners.auto_batch_size
    workers: int | None = None
    progress: bool = True
    # Long files: windows, voice gate, per channel; auto segments files over two windows (docs/SEGMENTS.md).
    segments: SegmentConfig = Field(default_factory=lambda: SegmentConfig(mode="auto"))
    # Video files (docs/VIDEO.md): face model, frame sampling, per-frame table, fusion weight override.
    video_model: str = "pretrained-fer"  # or a video model directory (aei-batch train --modality video)
    video_model_name: str | None = None
    frame_every: int = 20
    frame_fps: float | None = None
    frames_table: str | None = None  # location of the per-frame table; None: not written
    audio_weight: float | None = None  # None: the video model card's fitted weight, else 0.5
    # speaker-adaptive scoring (scoring/speaker.py, stage.py finish_pending): None follows the model card
    speaker_adaptive: bool | None = None
    min_speaker_files: int | None = None  # None: the model card's value (training default 10)
    speaker_pattern: str | None = None  # regex on the file name; group 1 is the speaker key
    # Operations (docs/CONFIG.md); the behaviour lives with the scoring job and the sinks.
    allowed_roots: list[str] | None = None  # manifest uris under these roots are allowed (--allow-root)
    on_complete: str | None = None  # URL (POSTed the run summary) or command run after the commit
    metrics: str | None = None  # PATH (a metrics file) or :PORT (a Prometheus endpoint)
    lineage: str | None = None  # PATH or URL: where the run's lineage event goes
    log_format: str = "text"  # text | json
    checkpoint_every: int = 0  # commit progress every N files; 0 = one commit at the end

    @classmethod
    def extra_keys(cls) -> dict[str, str]:
        keys = {"format": "table_format", "model": "model_name", "allow_root": "allowed_roots"}
        keys.update({k: "segments" for k in SEGMENT_KEYS})
        return keys

    @field_validator("extensions", "allowed_roots", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("catalog", mode="before")
    @classmethod
    def _catalog_block(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise ConfigError(
                "the catalog: block of --config must be a mapping of pyiceberg catalog properties"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> ScoreOptions:
        if self.min_speaker_files is not None and self.min_speaker_files < 2:
            raise ConfigError(f"--min-speaker-files must be at least 2, got {self.min_speaker_files}")
        from aei_batch.scoring.speaker import compile_pattern

        compile_pattern(self.speaker_pattern)
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise ConfigError(f"--max-error-rate must be between 0 and 1, got {self.max_error_rate}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(
                f"--workers must be at least 1, got {self.workers}",
                hint="leave it out to use every CPU of the machine or cluster",
            )
        if self.max_file_mb is not None and self.max_file_mb <= 0:
            raise ConfigError(f"--max-file-mb must be positive, got {self.max_file_mb}")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ConfigError(f"--max-duration-s must be positive, got {self.max_duration_s}")
        if self.decode_timeout_s is not None and self.decode_timeout_s < 0:
            raise ConfigError(f"--decode-timeout-s must be 0 (off) or more, got {self.decode_timeout_s}")
        if self.runner not in RUNNERS:
            raise ConfigError(f"unknown runner {self.runner!r}", hint="use --runner auto, ray, pool or local")
        from aei_batch.io.tables import validate_format, validate_mode

        validate_format(self.table_format)
        validate_mode(self.mode)
        if self.incremental and self.mode == "overwrite-run-date":
            raise ConfigError(
                "--incremental cannot be combined with --mode overwrite-run-date",
                hint="overwrite-run-date rescores a whole day: drop --incremental",
            )
        if self.extensions:
            self.extensions = [e if e.startswith(".") else f".{e}" for e in self.extensions]
        _choice("--log-format", self.log_format, LOG_FORMATS)
        _at_least("--checkpoint-every", self.checkpoint_every, 0)
        check_not_a_file("--output", self.output)
        from aei_batch.scoring.video import validate_video_options

        validate_video_options(self.frame_every, self.frame_fps, self.audio_weight)
        return self


class TrainOptions(Options):
    """Everything `aei-batch train` takes. The command line fills feature_set, models and speaker_adaptive
    from the data's modality when they are not given (`training.train.train_defaults`); these defaults are
    the seed's."""

    FLAGS: ClassVar[dict[str, str]] = {"progress": "--no-progress", "speaker_adaptive": "--speaker-adaptive"}

    data: str
    model_dir: str
    holdout_actors: list[int] = Field(default_factory=lambda: list(DEFAULT_HOLDOUT))
    feature_set: str = "seed_mfcc157"
    models: tuple[str, ...] = SEED_MODEL_NAMES
    runner: str = DEFAULT_RUNNER
    seed: int = 0
    progress: bool = True
    # Video training (docs/VIDEO.md): auto = audio when labelled audio exists, else video.
    modality: str = "auto"
    audio_model_dir: str | None = None  # video: fit the fusion weight with this audio model
    frame_every: int = 20
    epochs: int | None = None
    # Speaker-adaptive normalisation (aei_batch/scoring/speaker.py) and search (training/search.py)
    speaker_adaptive: bool = False
    min_speaker_files: int = 10
    search: bool = False
    cache_dir: str | None = None  # reuse featurised corpora (training/cv.py); None: always featurise
    augment: bool | None = (
        None  # telephone copies + random crops (training/data.py); None: on for voice_audio
    )
    heldout_windows: bool = True  # score generated calls of the held-out actors (training/calls.py)
    #: fit the default blend's window temperature on windows of generated calls of the training actors
    window_temperature: bool = True

    @field_validator("holdout_actors", mode="before")
    @classmethod
    def _actors(cls, value: Any) -> Any:
        return parse_actors(value) if isinstance(value, str) or value is None else value

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        return _split(value)

    @model_validator(mode="after")
    def _check(self) -> TrainOptions:
        if any(not 1 <= a <= 99 for a in self.holdout_actors):
            raise ConfigError(f"actor ids must be 1-99, got {self.holdout_actors}")
        _choice("--runner", self.runner, RUNNERS)
        _choice("--modality", self.modality, MODALITIES)
        _at_least("--frame-every", self.frame_every, 1)
        _at_least("--epochs", self.epochs, 1)
        _at_least("--min-speaker-files", self.min_speaker_files, 2)
        if not self.models:
            raise ConfigError("--models is empty", hint="name at least one model (docs/MODELS.md)")
        return self


class EvaluateOptions(Options):
    """Everything `aei-batch evaluate` takes: one of a model directory, --cv, or a predictions table."""

    FLAGS: ClassVar[dict[str, str]] = {"data": "DATA", "model_name": "--model"}

    report_dir: str = "eval-report"
    data: str | None = None
    model_dir: str | None = None
    model_name: str | None = None
    cv: bool = False
    predictions: str | None = None  # a predictions table location (as `score --output`)
    table_format: str = DEFAULT_TABLE_FORMAT
    catalog_uri: str | None = None
    catalog: dict[str, Any] | None = None
    table: str | None = None
    feature_set: str = BEST_FEATURE_SET
    models: tuple[str, ...] = BEST_MODELS
    speaker_adaptive: bool = True
    min_speaker_files: int = 10
    folds: int = 5
    seed: int = 0
    runner: str = DEFAULT_RUNNER
    cache_dir: str | None = None
    # --model-dir: also the files as telephone copies and under a noise floor, and generated calls scored
    # window by window
    telephone: bool = True
    noise: bool = True
    windows: bool = True
    window_s: float = SegmentConfig.window_s
    hop_s: float = SegmentConfig.hop_s
    call_clips: int = 20  # clips of one speaker per generated call (as bench/_corpus.py)
    extra: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def extra_keys(cls) -> dict[str, str]:
        return {"format": "table_format", "model": "model_name"}

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        return _split(value)

    @model_validator(mode="after")
    def _check(self) -> EvaluateOptions:
        modes = [bool(self.model_dir), self.cv, bool(self.predictions)]
        if sum(modes) != 1:
            raise ConfigError(
                "evaluate needs exactly one of --model-dir, --cv or --predictions",
                hint="e.g. `aei-batch evaluate DATA --model-dir M`, `aei-batch evaluate DATA --cv`",
            )
        if (self.model_dir or self.cv) and not self.data:
            raise ConfigError("evaluate needs DATA (labelled RAVDESS-named audio) with --model-dir or --cv")
        _choice("--runner", self.runner, RUNNERS)
        from aei_batch.io.tables import validate_format

        validate_format(self.table_format)
        _at_least("--folds", self.folds, 2)
        _at_least("--min-speaker-files", self.min_speaker_files, 2)
        _at_least("--call-clips", self.call_clips, 2)
        SegmentConfig(mode="on", window_s=self.window_s, hop_s=self.hop_s)  # the window checks of `score`
        check_not_a_file("--predictions", self.predictions)
        return self


#: The old name (kept for code and tests that import it).
EvalOptions = EvaluateOptions


class QueryOptions(Options):
    """Where the table is (the same settings `score` was given) and how to print the result."""

    FLAGS: ClassVar[dict[str, str]] = {"output_format": "--format"}

    output: str
    table_format: str = DEFAULT_TABLE_FORMAT
    catalog_uri: str | None = None
    catalog: dict[str, Any] | None = None
    table: str | None = None
    output_format: str = "table"  # table | csv | json (--format)
    max_rows: int = 1000

    @classmethod
    def extra_keys(cls) -> dict[str, str]:
        return {"format": "table_format"}

    @model_validator(mode="after")
    def _check(self) -> QueryOptions:
        from aei_batch.io.tables import validate_format

        validate_format(self.table_format)
        _choice("--format", self.output_format, QUERY_OUTPUT_FORMATS)
        _at_least("--max-rows", self.max_rows, 1)
        check_not_a_file("--output", self.output)
        return self


class TimelineOptions(Options):
    """`aei-batch timeline`: which file, which table, where the PNG goes."""

    FLAGS: ClassVar[dict[str, str]] = {"uri": "URI"}

    uri: str
    output: str  # the table location (`score --output`)
    png: str | None = None  # default: <file name>.timeline.png in the working directory
    table_format: str = DEFAULT_TABLE_FORMAT
    run_id: str | None = None
    catalog_uri: str | None = None
    catalog: dict[str, Any] | None = None
    table: str | None = None

    @classmethod
    def extra_keys(cls) -> dict[str, str]:
        return {"format": "table_format"}

    @model_validator(mode="after")
    def _check(self) -> TimelineOptions:
        from aei_batch.io.tables import validate_format

        validate_format(self.table_format)
        check_not_a_file("--output", self.output)
        return self


class SubmitOptions(Options):
    """What `aei-batch submit <command>` takes; `args` are the command's arguments as validated by
    `aei_batch.cli.job_args`."""

    command: str
    args: list[str] = Field(default_factory=list)
    address: str | None = None
    submission_id: str | None = None
    working_dir: str | None = None
    env_keys: list[str] = Field(default_factory=list)
    config: Path | None = None  # the local YAML (already folded into `args` or carried as `config_text`)
    config_text: str | None = None  # the YAML shipped verbatim on `--config /dev/stdin`
    wait: bool = True


# --------------------------------------------------------------------------- the loader

OptionsT = TypeVar("OptionsT", bound=Options)


def read_config(path: Path | str | None) -> dict[str, Any]:
    """A --config YAML as a mapping with `-` in keys turned into `_` (empty without a path)."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}", hint="pass an existing YAML file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _env_values(cls: type[Options], environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        key = ENV_PREFIX + name.upper()
        text = str(info.annotation)
        if "dict[" in text:  # mappings (the catalog: block) come from the YAML only
            continue
        if key in environ and environ[key] != "":
            raw = environ[key]
            out[name] = _split(raw) if ("list[" in text or "tuple[" in text) else raw
    return out


def _bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _segments(values: dict[str, Any]) -> dict[str, Any]:
    """Fold `segments` (the mode, or a SegmentConfig) and the flat window keys into one SegmentConfig."""
    seg = values.get("segments")
    flat = {k: values.pop(k) for k in SEGMENT_KEYS if k in values}
    if isinstance(seg, SegmentConfig) and not flat:
        return values
    if seg is True or seg is False:  # YAML 1.1 reads `segments: on` as a boolean
        seg = "on" if seg else "off"
    fields: dict[str, Any] = {"mode": "auto" if seg is None else seg}
    if isinstance(seg, SegmentConfig):
        fields = {k: v for k, v in seg.as_dict().items()}
    elif isinstance(seg, dict):
        fields = {"mode": "auto", **seg}
    for key, value in flat.items():
        kind: type = bool if key == "per_channel" else float
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            continue
        if kind is bool and isinstance(value, bool):
            continue
        try:
            flat[key] = float(value) if kind is float and isinstance(value, str) else _bool(value)
        except (TypeError, ValueError):
            what = "a number" if kind is float else "true or false"
            raise ConfigError(
                f"--{key.replace('_', '-')}: {value!r} is not valid: it must be {what}",
                hint="fix the value (see `aei-batch score --help` or docs/SEGMENTS.md)",
            ) from None
    fields.update(flat)
    try:
        values["segments"] = SegmentConfig(**fields)
    except TypeError as exc:
        raise ConfigError(f"invalid segments options {fields!r}: {exc}") from None
    return values


def load_options(
    cls: type[OptionsT],
    *,
    flags: Mapping[str, Any],
    config: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ignore_keys: set[str] | frozenset[str] = frozenset(),
) -> OptionsT:
    """Build `cls` from flags (None = not given) > the --config YAML > AEI_<FIELD> env vars > defaults.

    `finish` may fill derived defaults once the values are merged; `ignore_keys` are YAML keys accepted and
    ignored (another command's options in a shared file). Any bad value is a ConfigError naming it.
    """
    environ = os.environ if environ is None else environ
    file_values = read_config(config)
    aliases = cls.extra_keys()
    unknown = sorted(k for k in file_values if k not in cls.config_keys() and k not in ignore_keys)
    if unknown:
        known = sorted(k for k in cls.config_keys() if k not in ("progress", "extra", "format"))
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} in config {config}: {', '.join(unknown)}",
            hint=f"the known keys are: {', '.join(known)}",
        )
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, value in _env_values(cls, environ).items():
        values[name], origins[name] = value, ENV_PREFIX + name.upper()
    for key, value in file_values.items():
        if key in ignore_keys and key not in cls.config_keys():
            continue
        field = aliases.get(key, key)
        if key in SEGMENT_KEYS and field == "segments":
            values[key] = value  # folded by _segments
            origins["segments"] = f"{key} in {config}"
            continue
        if key == "format":
            deprecated(f"config key 'format' is deprecated: use 'table_format' (in {config})")
        values[field], origins[field] = value, f"{key} in {config}"
    for name, value in flags.items():
        if value is not None:
            values[name] = value
            origins.pop(name, None)
    if "segments" in cls.model_fields:
        values = _segments(values)
    token = _ORIGINS.set(origins)
    try:
        if finish is not None:
            values = finish(values)
        return cls(**values)
    finally:
        _ORIGINS.reset(token)


def listing_kwargs(opts: ScoreOptions) -> dict[str, Any]:
    """Keyword arguments of `storage.list_inputs` for these options: `extensions` and `allowed_roots`."""
    kwargs: dict[str, Any] = {"extensions": opts.extensions}
    if opts.allowed_roots is not None:
        kwargs["allowed_roots"] = list(opts.allowed_roots)
    return kwargs


def score_keys() -> set[str]:
    """Every key a `score` config may hold (query and timeline read the same file and ignore the rest)."""
    return ScoreOptions.config_keys()
