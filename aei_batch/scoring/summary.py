"""What a scoring run reports when it ends: counts, errors by code, speed, the model."""

from __future__ import annotations

from dataclasses import dataclass, field

from aei_batch.config import DEFAULT_MAX_ERROR_RATE
from aei_batch.errors import ExitCode


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
    skipped: int = 0  # listed files left out by --incremental: already scored with this model
    replaced: int = 0  # rows of earlier runs replaced by this run's rows (same key)

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.files if self.files else 0.0

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ERROR_RATE if self.error_rate > self.max_error_rate else ExitCode.OK
