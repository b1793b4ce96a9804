"""The rows of a scoring run: the input table a batch carries, the run's shared context, and the helpers
that build a predictions row (identity and labels, then a prediction or an error).

Every scorer and the driver's speaker finisher fill rows through these functions only, so a row looks the
same whichever path produced it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from aei_batch.errors import ErrorCode
from aei_batch.io.storage import VIDEO_EXTENSIONS
from aei_batch.records import (
    COL,
    EMOTIONS,
    PREDICTIONS_SCHEMA,
    PROB_COLUMNS,
    STATUS_ERROR,
    STATUS_OK,
    FileRef,
    parse_ravdess_name,
)

#: What a batch carries per input file. `error_code`/`error_message` are set when listing already decided
#: the file cannot be scored (outside the allowed roots, not a regular file, a bad name): one error row each.
INPUT_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("etag", pa.string()),
        pa.field("extra", pa.string()),  # JSON object of manifest columns
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
    ]
)


@dataclass(frozen=True)
class RunContext:
    """What every row and every worker of one run shares (picklable: it travels to the workers)."""

    run_id: str
    run_date: date
    scored_at: datetime
    model_dir: str
    model_name: str | None = None
    max_file_bytes: int | None = None
    max_duration_s: float | None = None
    decode_timeout_s: float | None = None  # None: decode in-process, no watchdog (training)
    speaker_column: str = "speaker_id"
    options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def new(model_dir: str, **kw: Any) -> RunContext:
        now = datetime.now(UTC)
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        return RunContext(run_id=run_id, run_date=now.date(), scored_at=now, model_dir=model_dir, **kw)


def refs_to_table(refs: list[FileRef]) -> pa.Table:
    """Input references -> the Arrow table the stages consume."""
    return pa.Table.from_pylist(
        [
            {
                "uri": r.uri,
                "size": r.size,
                "etag": r.etag,
                "extra": json.dumps(r.extra) if r.extra else None,
                "error_code": getattr(r, "error_code", None),
                "error_message": getattr(r, "error_message", None),
            }
            for r in refs
        ],
        schema=INPUT_SCHEMA,
    )


def input_modality(uri: str) -> str:
    """`video` for a video container's extension, else `audio` (the router probes further)."""
    dot = uri.rfind(".")
    return "video" if dot >= 0 and uri[dot:].lower() in VIDEO_EXTENSIONS else "audio"


def base_row(ref: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """The identity, label and run columns of a row (no prediction yet)."""
    row: dict[str, Any] = dict.fromkeys(PREDICTIONS_SCHEMA.names)
    extra = json.loads(ref["extra"]) if ref.get("extra") else {}
    row.update(
        {
            COL.uri: ref["uri"],
            COL.size_bytes: ref.get("size"),
            COL.etag: ref.get("etag"),
            COL.input_modality: input_modality(ref["uri"]),
            COL.run_id: ctx.run_id,
            COL.run_date: ctx.run_date,
            COL.scored_at: ctx.scored_at,
            COL.extra: json.dumps(extra, sort_keys=True) if extra else None,
        }
    )
    row.update(parse_ravdess_name(ref["uri"]).as_columns())
    speaker = extra.get(ctx.speaker_column)
    if speaker is None and row[COL.actor] is not None:
        speaker = f"actor-{row[COL.actor]:02d}"
    row[COL.speaker_id] = speaker
    return row


def fill_prediction(row: dict[str, Any], proba: np.ndarray, modalities: str) -> None:
    """The 8 probabilities, the top two and the modalities that produced them; status ok."""
    order = np.argsort(-proba, kind="stable")
    row.update({c: float(p) for c, p in zip(PROB_COLUMNS, proba, strict=True)})
    row[COL.predicted_emotion] = EMOTIONS[int(order[0])]
    row[COL.confidence] = float(proba[order[0]])
    row[COL.second_emotion] = EMOTIONS[int(order[1])]
    row[COL.second_confidence] = float(proba[order[1]])
    row[COL.modalities_used] = modalities
    row[COL.status] = STATUS_OK
    row[COL.error_code] = None
    row[COL.error_message] = None


def fill_error(row: dict[str, Any], code: ErrorCode | str, message: str) -> None:
    row[COL.status] = STATUS_ERROR
    row[COL.error_code] = str(code)
    row[COL.error_message] = message[:500]


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)
