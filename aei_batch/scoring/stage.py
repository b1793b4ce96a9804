"""The per-file work, shared by the in-process runner and Ray.

`ScoreStage` is a callable class: its constructor loads heavy state once (the model; the decode
watchdog, whose child decodes and featurises each file); `__call__` takes a batch of
input references (a pyarrow Table with the columns of `INPUT_SCHEMA`) and returns exactly one output
row per input row: a prediction, or an error row with a stable code. A batch that would return a
different number of rows raises, because a lost row is worse than a failed batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from aei_batch.errors import AeiError, ErrorCode, FileError, StorageError
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

log = logging.getLogger(__name__)

INPUT_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("etag", pa.string()),
        pa.field("extra", pa.string()),  # JSON object of manifest columns
    ]
)

# Errors from storage that mean "the store is down", not "this file is bad": they fail the run.
_SYSTEMIC_S3 = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError")


@dataclass(frozen=True)
class RunContext:
    """What every row of one run shares."""

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
        import uuid

        now = datetime.now(UTC)
        run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        return RunContext(run_id=run_id, run_date=now.date(), scored_at=now, model_dir=model_dir, **kw)


def refs_to_table(refs: list[FileRef]) -> pa.Table:
    """Input references -> the Arrow table the stages consume."""
    return pa.Table.from_pylist(
        [
            {"uri": r.uri, "size": r.size, "etag": r.etag, "extra": json.dumps(r.extra) if r.extra else None}
            for r in refs
        ],
        schema=INPUT_SCHEMA,
    )


def input_modality(uri: str) -> str:
    from aei_batch.io.storage import VIDEO_EXTENSIONS

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
    order = np.argsort(-proba, kind="stable")
    row.update({c: float(p) for c, p in zip(PROB_COLUMNS, proba, strict=True)})
    row[COL.predicted_emotion] = EMOTIONS[int(order[0])]
    row[COL.confidence] = float(proba[order[0]])
    row[COL.second_emotion] = EMOTIONS[int(order[1])]
    row[COL.second_confidence] = float(proba[order[1]])
    row[COL.modalities_used] = modalities
    row[COL.status] = STATUS_OK


def fill_error(row: dict[str, Any], code: ErrorCode, message: str) -> None:
    row[COL.status] = STATUS_ERROR
    row[COL.error_code] = str(code)
    row[COL.error_message] = message[:500]


def check_listed_size(ref: dict[str, Any], ctx: RunContext) -> None:
    """FILE_TOO_LARGE before anything is read, when the listing's size is over --max-file-mb."""
    size, limit = ref.get("size"), ctx.max_file_bytes
    if limit is not None and size is not None and size > limit:
        raise FileError(
            ErrorCode.FILE_TOO_LARGE, f"file is {size} bytes, over the limit of {limit} (--max-file-mb)"
        )


def fetch(ref: dict[str, Any], ctx: RunContext) -> bytes:
    """Read a file's bytes, enforcing the size limit; per-file problems raise FileError."""
    from aei_batch.io import storage

    check_listed_size(ref, ctx)
    limit = ctx.max_file_bytes
    if not storage.is_s3(ref["uri"]):
        from aei_batch.features.clip import read_local

        return read_local(storage.local_path(ref["uri"]), limit)
    try:
        data = storage.read_bytes(ref["uri"], max_bytes=limit)
    except (FileError, AeiError):  # already classified by aei_batch.io.storage
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        name = type(exc).__name__
        if name in _SYSTEMIC_S3:
            raise StorageError(
                f"storage unreachable while reading files ({name}, after AEI_S3_MAX_ATTEMPTS retries)",
                hint="check AWS_ENDPOINT_URL and the network; nothing was committed: rerun when it is back",
            ) from None
        raise FileError(ErrorCode.READ_FAILED, f"cannot read the file: {name}: {str(exc)[:200]}") from None
    if limit is not None and len(data) > limit:
        raise FileError(ErrorCode.FILE_TOO_LARGE, f"file is over the limit of {limit} bytes (--max-file-mb)")
    return data


class FeatureStage:
    """Read + decode + featurise. Holds the feature set; used by training and by scoring."""

    def __init__(self, feature_set_name: str, ctx: RunContext) -> None:
        from aei_batch.features import get_feature_set
        from aei_batch.runtime.watchdog import Watchdog

        self.fs = get_feature_set(feature_set_name)
        self.ctx = ctx
        self.decoder = Watchdog(ctx.decode_timeout_s)  # decodes in a child process when a timeout is set
        if self.decoder.timeout_s is None:  # features run here: compile numba kernels now, not on file 1
            from aei_batch.features.clip import warm_up_features

            warm_up_features(feature_set_name)
        else:  # the child starts and warms up while this worker goes on setting up (model, first batch)
            self.decoder.prestart("aei_batch.features.clip")

    def featurise(self, ref: dict[str, Any], data: bytes | None = None) -> tuple[np.ndarray, float]:
        """Features of one file as one clip; `data` are its bytes when the caller already read them.

        Decoding and features both run in the decoder child (under the decode timeout) when there is
        one: the bytes go in (for a local file not read yet, only its path: the child reads it) and the
        vector comes back (aei_batch/features/clip.py)."""
        from aei_batch.decode.audio import ANALYSIS_SR
        from aei_batch.features.clip import decode_and_extract, read_decode_and_extract
        from aei_batch.io import storage

        uri = ref["uri"]
        if data is None and self.decoder.timeout_s is not None and not storage.is_s3(uri):
            check_listed_size(ref, self.ctx)  # the decoder child reads the file itself: no bytes on the pipe
            vec, duration_s = self.decoder.call(
                read_decode_and_extract,
                storage.local_path(uri),
                uri,
                self.fs.name,
                sr=ANALYSIS_SR,
                max_duration_s=self.ctx.max_duration_s,
                max_bytes=self.ctx.max_file_bytes,
            )
            return vec, float(duration_s)
        data = fetch(ref, self.ctx) if data is None else data
        max_s = self.ctx.max_duration_s
        vec, duration_s = self.decoder.call(
            decode_and_extract, data, uri, self.fs.name, sr=ANALYSIS_SR, max_duration_s=max_s
        )
        return vec, float(duration_s)


class ScoreStage:
    """Featurise and predict a batch of files with a model loaded once per worker."""

    def __init__(self, ctx: RunContext) -> None:
        from aei_batch.models.loader import load_model

        self.ctx = ctx
        self.model = load_model(ctx.model_dir, ctx.model_name)
        self.features = FeatureStage(self.model.feature_set.name, ctx)
        from aei_batch.scoring.windows import SegmentScorer

        # Long files scored window by window (docs/SEGMENTS.md); None when --segments off.
        self.segmenter = SegmentScorer.maybe(ctx, self.model, getattr(self.features, "decoder", None))
        from aei_batch.scoring.video import VideoScorer

        # Video files: sampled frames -> faces -> face model, fused with audio (docs/VIDEO.md). Lazy: the
        # face model (TensorFlow) loads on the first video file only.
        self.video = VideoScorer(ctx, self.features)

    def __call__(self, batch: pa.Table) -> pa.Table:
        refs = batch.to_pylist()
        rows = [base_row(r, self.ctx) for r in refs]
        ok_idx: list[int] = []
        vecs: list[np.ndarray] = []
        segments: list[list[dict[str, Any]] | None] = [None] * len(refs)
        videos: dict[int, Any] = {}
        for i, ref in enumerate(refs):
            try:
                data = None
                if input_modality(ref["uri"]) == "video":
                    item = self.video.prepare(ref, rows[i])
                    if item.has_video:
                        videos[i] = item
                        if item.audio_vec is not None:
                            ok_idx.append(i)
                            vecs.append(item.audio_vec)
                        continue
                    data = item.data  # a video container without a video track: scored as audio
                if self.segmenter is not None:
                    done = self.segmenter.score_file(ref, rows[i])
                    if isinstance(done, list):
                        segments[i] = done
                        continue
                    data = done.data if done.data is not None else data
                vec, dur = self.features.featurise(ref, data)
                rows[i][COL.duration_s] = dur
                ok_idx.append(i)
                vecs.append(vec)
            except FileError as err:
                fill_error(rows[i], err.code, err.message)
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug on one file must not lose the batch
                log.exception("unexpected error on %s", ref["uri"])
                fill_error(rows[i], ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        self._predict(rows, ok_idx, vecs)
        frames = self.video.finish(rows, videos)
        out = rows_to_table(rows)
        if self.video.want_frames:
            from aei_batch.io.sinks.frames import attach_frames

            out = attach_frames(out, frames)  # the driver splits them off to the frames table
        if self.segmenter is not None:
            from aei_batch.io.sinks.segments import attach_segments

            out = attach_segments(out, segments)  # the driver splits them off to the segments table
        if out.num_rows != batch.num_rows:
            raise RuntimeError(f"stage returned {out.num_rows} rows for {batch.num_rows} inputs")
        return out

    def _predict(self, rows: list[dict[str, Any]], idx: list[int], vecs: list[np.ndarray]) -> None:
        for row in rows:  # error rows carry the model identity too: they say what was attempted
            row[COL.model_name] = self.model.name
            row[COL.model_version] = self.model.version
            row[COL.feature_set] = self.model.feature_set.id
        if not idx:
            return
        try:
            proba = self.model.predict_proba8(np.stack(vecs))
        except Exception as exc:  # noqa: BLE001
            for i in idx:
                fill_error(rows[i], ErrorCode.PREDICT_FAILED, f"{type(exc).__name__}: {exc}")
            return
        for j, i in enumerate(idx):
            fill_prediction(rows[i], proba[j], "audio")


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)


FEATURES_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string()),
        pa.field("features", pa.list_(pa.float32())),
        pa.field("duration_s", pa.float64()),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
    ]
)


class FeatureTableStage:
    """Batch -> one row of features (or an error) per file; what training and evaluation consume."""

    def __init__(self, ctx: RunContext, feature_set_name: str) -> None:
        self.features = FeatureStage(feature_set_name, ctx)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for ref in batch.to_pylist():
            row: dict[str, Any] = {
                "uri": ref["uri"],
                "features": None,
                "duration_s": None,
                "error_code": None,
                "error_message": None,
            }
            try:
                vec, row["duration_s"] = self.features.featurise(ref)
                row["features"] = vec.tolist()
            except FileError as err:
                row["error_code"], row["error_message"] = str(err.code), err.message
            except StorageError:
                raise
            except Exception as exc:  # noqa: BLE001
                row["error_code"], row["error_message"] = (
                    str(ErrorCode.INTERNAL),
                    f"{type(exc).__name__}: {exc}",
                )
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)
