"""The options of every command, validated at construction; defaults live here, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aei_batch.errors import ConfigError
from aei_batch.scoring.windows import SegmentConfig

DEFAULT_MAX_ERROR_RATE = 0.10
#: Longer audio becomes a TOO_LONG row. Long files are decoded and featurised in chunks (segments), so
#: memory does not grow with duration; with --segments off a worker holds the whole file (docs/ERRORS.md).
DEFAULT_MAX_DURATION_S = 4 * 3600.0
DEFAULT_DECODE_TIMEOUT_S = 120.0


@dataclass
class ScoreOptions:
    """Everything `aei-batch score` takes, validated at construction."""

    source: str
    model_dir: str
    output: str
    model_name: str | None = None
    runner: str = "auto"  # auto | ray | local (aei_batch.runtime.runners.resolve_runner)
    table_format: str = "iceberg"  # iceberg | parquet (aei_batch.io.tables.FORMATS)
    mode: str = "merge"  # merge | overwrite-run-date (aei_batch.io.tables.MODES)
    incremental: bool = False  # score only files whose (uri, etag, model_version) is not in the table yet
    catalog_uri: str | None = None  # Iceberg catalog URI (else AEI_CATALOG_URI, catalog.uri, embedded sqlite)
    catalog: dict[str, Any] | None = None  # pyiceberg catalog properties (the `catalog:` block of --config)
    table: str | None = None  # Iceberg table identifier (default aei.predictions)
    extensions: list[str] | None = None
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    max_file_mb: float | None = 512.0
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S
    decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S
    batch_size: int | None = None  # None: aei_batch.runtime.runners.auto_batch_size
    workers: int | None = None
    progress: bool = True
    # Long files: windows, voice gate, per channel; auto segments files over two windows (docs/SEGMENTS.md).
    segments: SegmentConfig = field(default_factory=lambda: SegmentConfig(mode="auto"))
    # Video files (docs/VIDEO.md): face model, frame sampling, per-frame table, fusion weight override.
    video_model: str = "pretrained-fer"  # or a video model directory (aei-batch train --modality video)
    video_model_name: str | None = None
    frame_every: int = 20
    frame_fps: float | None = None
    frames_table: str | None = None  # location of the per-frame table; None: not written
    audio_weight: float | None = None  # None: the video model card's fitted weight, else 0.5
    # Speaker-adaptive two-pass scoring (aei_batch/scoring/speaker_pass.py): None follows the model card.
    speaker_adaptive: bool | None = None
    min_speaker_files: int | None = None  # None: the model card's value (training default 10)
    speaker_pattern: str | None = None  # regex on the file name; group 1 is the speaker key

    def __post_init__(self) -> None:
        if self.min_speaker_files is not None and self.min_speaker_files < 2:
            raise ConfigError(f"--min-speaker-files must be at least 2, got {self.min_speaker_files}")
        from aei_batch.scoring.speaker import compile_pattern

        compile_pattern(self.speaker_pattern)
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise ConfigError(f"--max-error-rate must be between 0 and 1, got {self.max_error_rate}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_file_mb is not None and self.max_file_mb <= 0:
            raise ConfigError(f"--max-file-mb must be positive, got {self.max_file_mb}")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise ConfigError(f"--max-duration-s must be positive, got {self.max_duration_s}")
        if self.decode_timeout_s is not None and self.decode_timeout_s < 0:
            raise ConfigError(f"--decode-timeout-s must be 0 (off) or more, got {self.decode_timeout_s}")
        if self.runner not in ("auto", "ray", "pool", "local"):
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
        from aei_batch.scoring.video import validate_video_options

        validate_video_options(self.frame_every, self.frame_fps, self.audio_weight)
