"""What a scoring run reports when it ends: counts, errors by code, speed, the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aei_batch.config import DEFAULT_MAX_ERROR_RATE
from aei_batch.errors import ExitCode

#: Prefix of the run's facts in an Iceberg snapshot's summary properties (docs/OBSERVE.md).
SNAPSHOT_PREFIX = "aei."


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
    # The licence the model's training data imposes on its use, from the model card ("" when the card
    # has none); printed with the summary (aei_batch/models/model_card.py).
    model_licence: str = ""

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.files if self.files else 0.0

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ERROR_RATE if self.error_rate > self.max_error_rate else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data: every field plus files/s, error rate, exit code and status."""
        d = asdict(self)
        d["files_per_s"] = round(self.files_per_s, 3)
        d["error_rate"] = round(self.error_rate, 6)
        d["exit_code"] = int(self.exit_code)
        d["status"] = "completed" if self.exit_code == ExitCode.OK else "completed_over_error_rate"
        return d

    def snapshot_properties(self) -> dict[str, str]:
        """The run's facts as Iceberg snapshot summary properties (string to string, `aei.` prefixed)."""
        p = SNAPSHOT_PREFIX
        props = {
            f"{p}run-id": self.run_id,
            f"{p}input": self.source,
            f"{p}model": self.model,
            f"{p}files": str(self.files),
            f"{p}scored": str(self.scored),
            f"{p}errors": str(self.errors),
            f"{p}skipped": str(self.skipped),
            f"{p}seconds": f"{self.seconds:.3f}",
            f"{p}files-per-s": f"{self.files_per_s:.3f}",
        }
        for code, n in sorted(self.error_codes.items()):
            props[f"{p}errors.{code}"] = str(n)
        if self.model_licence:
            props[f"{p}model-licence"] = self.model_licence
        return props
