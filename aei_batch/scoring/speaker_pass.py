"""Two-pass speaker-adaptive scoring (used by `run_score` when the model card asks for it).

Pass 1 featurises every file on the runner (Ray actors running `FeatureTableStage`, the same
read/decode/feature code as single-pass scoring). The driver then groups the feature vectors by
speaker, z-scores each speaker's files with that speaker's statistics in this run (or the training
data's global statistics under `min_speaker_files`), and pass 2 predicts on the driver in chunks:
the model is small and the features are already in memory, so a second fan-out would cost more than
it saves. Every input ref still ends as exactly one row: files that failed in pass 1 become error
rows with their pass-1 code.

Memory: the driver holds one feature vector per file (701 float32 for `rich_audio`: about 2.8 kB, so
1M files take about 3 GB).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from aei_batch.errors import ErrorCode
from aei_batch.records import COL, FileRef

log = logging.getLogger(__name__)

PREDICT_CHUNK = 1024


def resolve_speaker(row: dict[str, Any], ctx_column: str, rx: Any) -> str | None:
    """Speaker key: manifest column, else the --speaker-pattern match, else the RAVDESS actor."""
    import json

    from aei_batch.scoring.speaker import speaker_from_name

    extra = json.loads(row[COL.extra]) if row.get(COL.extra) else {}
    if extra.get(ctx_column) is not None:
        return str(extra[ctx_column])
    named = speaker_from_name(row[COL.uri], rx)
    return named if named is not None else row.get(COL.speaker_id)


def featurise_all(
    ctx: Any,
    feature_set: str,
    refs: list[FileRef],
    *,
    runner: str,
    batch_size: int,
    workers: int | None,
    on_batch: Any = None,
) -> dict[str, dict[str, Any]]:
    """Pass 1: uri -> FeatureTableStage row (features or error), fanned out on the runner."""
    from aei_batch.runtime.runners import run_stage
    from aei_batch.scoring.stage import FeatureTableStage, refs_to_table

    rows: dict[str, dict[str, Any]] = {}
    for out in run_stage(
        FeatureTableStage,
        {"ctx": ctx, "feature_set_name": feature_set},
        refs_to_table(refs),
        runner=runner,
        batch_size=batch_size,
        workers=workers,
    ):
        for r in out.to_pylist():
            rows[r["uri"]] = r
        if on_batch is not None:
            on_batch(out.num_rows)
    return rows


def score_two_pass(
    ctx: Any,
    model: Any,
    refs: list[FileRef],
    *,
    runner: str,
    batch_size: int,
    workers: int | None,
    min_speaker_files: int,
    speaker_pattern: str | None = None,
    on_batch: Any = None,
) -> Iterator[pa.Table]:
    """Yield prediction tables (PREDICTIONS_SCHEMA) covering `refs`, one row per ref, in listing order."""
    from aei_batch.scoring.speaker import GlobalStats, compile_pattern, normalise
    from aei_batch.scoring.stage import base_row, fill_error, refs_to_table, rows_to_table

    rx = compile_pattern(speaker_pattern)
    feats = featurise_all(
        ctx,
        model.feature_set.name,
        refs,
        runner=runner,
        batch_size=batch_size,
        workers=workers,
        on_batch=on_batch,
    )
    rows = [base_row(r, ctx) for r in refs_to_table(refs).to_pylist()]
    ok: list[int] = []
    for i, row in enumerate(rows):
        row[COL.model_name], row[COL.model_version] = model.name, model.version
        row[COL.feature_set] = f"{model.feature_set.id}+speaker-z"
        row[COL.speaker_id] = resolve_speaker(row, ctx.speaker_column, rx)
        f = feats.get(row[COL.uri])
        if f is None:
            fill_error(row, ErrorCode.INTERNAL, "no pass-1 result for this file")
        elif f["features"] is None:
            fill_error(row, ErrorCode(f["error_code"]), f["error_message"] or "")
            row[COL.duration_s] = f["duration_s"]
        else:
            row[COL.duration_s] = f["duration_s"]
            ok.append(i)
    if ok:
        X = np.asarray([feats[rows[i][COL.uri]]["features"] for i in ok], dtype=np.float32)
        g = GlobalStats.from_json(model.card.options["global_stats"])
        Z, rep = normalise(X, [rows[i][COL.speaker_id] for i in ok], g, min_speaker_files)
        log.info(
            "speaker-adaptive: %d speakers, %d with own statistics, %d files on global statistics",
            rep.speakers,
            rep.own_stats,
            rep.fallback_files,
        )
        _predict(model, rows, ok, Z)
    for start in range(0, len(rows), PREDICT_CHUNK):
        yield rows_to_table(rows[start : start + PREDICT_CHUNK])


def _predict(model: Any, rows: list[dict[str, Any]], ok: list[int], Z: np.ndarray) -> None:
    from aei_batch.scoring.stage import fill_error, fill_prediction

    for start in range(0, len(ok), PREDICT_CHUNK):
        idx = ok[start : start + PREDICT_CHUNK]
        try:
            proba = model.predict_normalised(Z[start : start + PREDICT_CHUNK])
        except Exception as exc:  # noqa: BLE001 - a model failure becomes rows, like single-pass scoring
            for i in idx:
                fill_error(rows[i], ErrorCode.PREDICT_FAILED, f"{type(exc).__name__}: {exc}")
            continue
        for j, i in enumerate(idx):
            fill_prediction(rows[i], proba[j], "audio")
