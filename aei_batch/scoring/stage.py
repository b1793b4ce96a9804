"""The scoring stage: route each file to its scorer, run the speaker transform and the models, and return
typed outputs.

Per batch, in a worker (`runtime.adapter.WorkerAdapter` calls `setup` once, then `process_batch`):

1. **route and prepare** each file (the per-file error policy of `runtime.adapter.per_file`): a video
   container goes to the video scorer (frames, faces, and its audio track's features); a long recording to
   the window scorer (its windows' features, voice-gated); anything else, or a container without a video
   track, to the clip scorer (one vector). Decoding and features run in the worker's decoder child.
2. **video**: the face model over every crop of the batch in one call.
3. **audio**: every vector goes through the same `SpeakerTransform` and the same audio model. Vectors whose
   speaker statistics are known here are predicted now: all vectors of a per-file model; the windows of a
   long recording (its channels are their own speaker groups). The vectors of a speaker-adaptive model's
   clips (and video audio tracks) need the run's statistics of their speaker: they go back as `pending` rows
   with their vector and group, and the driver finishes them (`finish_pending`) with the same code.
4. **finish**: rollup and segments for windows, late fusion for audio+video, one predictions row per file.

Outputs are typed (`StageOutput`): predictions, segments, frames and pending rows, each routed to its own
sink by the driver. There are no hidden columns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from aei_batch.errors import ErrorCode, FileError
from aei_batch.records import COL, FRAMES_SCHEMA, PREDICTIONS_SCHEMA, PROB_COLUMNS, SEGMENTS_SCHEMA
from aei_batch.runtime.adapter import FileFailure, per_file
from aei_batch.scoring import inputs
from aei_batch.scoring.clip import ClipFeaturiser
from aei_batch.scoring.rows import RunContext, base_row, fill_error, input_modality, rows_to_table
from aei_batch.scoring.speaker import (
    DEFAULT_MIN_SPEAKER_FILES,
    GlobalStats,
    RunStats,
    SpeakerTransform,
    compile_pattern,
    resolve_speaker,
)
from aei_batch.scoring.video import VideoItem, VideoScorer, frame_rows, fuse_into_row, video_probs_of
from aei_batch.scoring.windows import ShortFile, WindowedFile, WindowScorer

log = logging.getLogger(__name__)

GROUP_COLUMN = "speaker_group"
FEATURES_COLUMN = "features"
#: Rows waiting for the run's speaker statistics: a predictions row so far, its speaker group and vector.
PENDING_SCHEMA = pa.schema(
    [
        *(f.with_nullable(True) for f in PREDICTIONS_SCHEMA),
        pa.field(GROUP_COLUMN, pa.string()),
        pa.field(FEATURES_COLUMN, pa.list_(pa.float32())),
    ]
)


@dataclass
class StageOutput:
    """One batch's typed outputs; together they cover every input file exactly once."""

    predictions: pa.Table
    segments: pa.Table | None = None
    frames: pa.Table | None = None
    pending: pa.Table | None = None

    @property
    def num_files(self) -> int:
        return self.predictions.num_rows + (self.pending.num_rows if self.pending is not None else 0)


class Predictor:
    """The audio model behind the speaker transform: loaded once per worker (and once on the driver)."""

    def __init__(self, model: Any, ctx: RunContext) -> None:
        self.model = model
        self.adaptive = bool(ctx.options.get("speaker_adaptive"))
        min_files = int(ctx.options.get("min_speaker_files") or DEFAULT_MIN_SPEAKER_FILES)
        fallback = GlobalStats.from_json(model.card.options["global_stats"]) if self.adaptive else None
        self.transform = SpeakerTransform(self.adaptive, fallback, min_files)
        suffix = "+speaker-z" if self.adaptive else ""
        self.ids = {
            COL.model_name: model.name,
            COL.model_version: model.version,
            COL.feature_set: f"{model.feature_set.id}{suffix}",
        }

    @property
    def adapts(self) -> bool:
        """Whether the model adapts its class means to each speaker group (models/adapt.py)."""
        return self.adaptive and bool(getattr(self.model, "adapts", False))

    def predict(
        self, Z: np.ndarray, adapt: list[np.ndarray | None] | None = None, windows: np.ndarray | None = None
    ) -> np.ndarray:
        """Probabilities of transformed features (a per-file model's raw features go as they are);
        `adapt`: each row's speaker-group adaptation statistics, or None; `windows`: which rows are
        windows of a long recording (the model's window temperature, if it has one)."""
        if self.adaptive:
            return self.model.predict_normalised(Z, adapt, windows)  # type: ignore[no-any-return]
        return self.model.predict_proba8(Z, windows)  # type: ignore[no-any-return]

    def own_adaptation(self, Z: np.ndarray, groups: list[str | None]) -> list[np.ndarray | None]:
        """Per row: the adaptation statistics of its group from these rows (a recording's windows), for
        groups normalised with their own statistics; None elsewhere or when the model does not adapt."""
        if not self.adapts:
            return [None] * len(Z)
        return self.model.adaptation_of(Z, groups, self.transform.min_files)  # type: ignore[no-any-return]


@dataclass
class Prepared:
    """One file between its scorer and the models."""

    clip: np.ndarray | None = None  # one vector: a clip, or a video's audio track
    windows: WindowedFile | None = None
    video: VideoItem | None = None
    group: str | None = None  # the clip vector's speaker group
    video_p: np.ndarray | None = None
    audio_p: np.ndarray | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)


class ScoreStage:
    """Score a batch of files with the run's audio model (and the face model for video files)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def setup(self) -> None:
        from aei_batch.models.loader import load_model

        model = load_model(self.ctx.model_dir, self.ctx.model_name)
        self.predictor = Predictor(model, self.ctx)
        self.featuriser = ClipFeaturiser(model.feature_set.id, self.ctx)
        self.windows = WindowScorer(self.ctx, model.feature_set.id, self.featuriser)
        self.video = VideoScorer(self.ctx, self.featuriser)
        self.rx = compile_pattern(self.ctx.options.get("speaker_pattern"))

    def teardown(self) -> None:
        self.featuriser.close()

    # ------------------------------------------------------------------ the batch

    def process_batch(self, batch: pa.Table) -> StageOutput:
        refs = batch.to_pylist()
        rows = [self._base_row(r) for r in refs]
        results = per_file(
            range(len(refs)), lambda i: self._prepare(refs[i], rows[i]), name=lambda i: refs[i]["uri"]
        )
        prepared: dict[int, Prepared] = {}
        for i, res in enumerate(results):
            if isinstance(res, FileFailure):
                fill_error(rows[i], res.code, res.message)
            else:
                prepared[i] = res
        frames = self._score_video(prepared, rows)
        pending = self._score_audio(prepared, rows)
        segments: list[dict[str, Any]] = []
        for i, p in prepared.items():
            if i in pending:
                continue
            if p.windows is not None:
                segments += p.segments
                if p.video_p is not None and rows[i][PROB_COLUMNS[0]] is not None:
                    # a long video: its windows' rollup fused with its faces
                    audio_p = np.array([rows[i][c] for c in PROB_COLUMNS], dtype=np.float64)
                    fuse_into_row(rows[i], audio_p, p.video_p, self.ctx.options.get("fusion"))
            elif p.audio_p is not None or p.video_p is not None:
                fuse_into_row(rows[i], p.audio_p, p.video_p, self.ctx.options.get("fusion"))
        done = [r for i, r in enumerate(rows) if i not in pending]
        return StageOutput(
            predictions=rows_to_table(done),
            segments=pa.Table.from_pylist(segments, schema=SEGMENTS_SCHEMA) if segments else None,
            frames=pa.Table.from_pylist(frames, schema=FRAMES_SCHEMA) if frames else None,
            pending=self._pending_table(rows, prepared, pending) if pending else None,
        )

    def _base_row(self, ref: dict[str, Any]) -> dict[str, Any]:
        row = base_row(ref, self.ctx)
        row.update(self.predictor.ids)  # error rows carry the model identity too: what was attempted
        if self.predictor.adaptive:
            row[COL.speaker_id] = resolve_speaker(
                row[COL.uri], row[COL.extra], row[COL.speaker_id], self.ctx.speaker_column, self.rx
            )
        return row

    def _prepare(self, ref: dict[str, Any], row: dict[str, Any]) -> Prepared:
        """Route one file to its scorer, decode and featurise it (no model yet); a local file whose identity
        changed meanwhile is an error row (its listed etag would key the new content's prediction)."""
        prepared = self._route(ref, row)
        if inputs.local_path(ref["uri"]) is not None and _changed(ref):
            raise FileError(
                ErrorCode.FILE_CHANGED,
                "the file changed while it was scored (its size or modification time is not the listed "
                "one): rerun to score the new content",
            )
        return prepared

    def _route(self, ref: dict[str, Any], row: dict[str, Any]) -> Prepared:
        """One probe decides the audio path (windows for a long track, one clip otherwise), then a video
        container adds its faces: a long video's track is windowed and its file row fuses their rollup with
        the faces; a short one is featurised with the frames, from the same bytes."""
        if ref.get("error_code"):  # decided at listing (outside the allowed roots, not a regular file, ...)
            raise FileError(ref["error_code"], ref.get("error_message") or "")
        video = input_modality(ref["uri"]) == "video"
        w = self._windows(ref, row, video)
        windowed = w if isinstance(w, WindowedFile) else None
        data = w.data if isinstance(w, ShortFile) else None  # the bytes of a small remote object, read once
        if video:
            duration_s = row[COL.duration_s]
            item = self.video.prepare(ref, row, audio=windowed is None, data=data)
            if windowed is not None:  # its audio track in windows (a timeline), fused with the faces below
                row[COL.duration_s] = duration_s
                return Prepared(windows=windowed, video=item if item.has_video else None)
            if item.has_video:
                return Prepared(clip=item.audio_vec, video=item, group=row[COL.speaker_id])
            data = item.data  # a container without a video track: scored as audio
        elif windowed is not None:
            return Prepared(windows=windowed)
        vec, duration_s = self.featuriser.featurise(ref, data)
        row[COL.duration_s] = duration_s
        return Prepared(clip=vec, group=row[COL.speaker_id])

    def _windows(
        self, ref: dict[str, Any], row: dict[str, Any], video: bool
    ) -> WindowedFile | ShortFile | None:
        """The window scorer's verdict on a file: its windows when long, ShortFile when short, None when
        windows are off. A video's track without audio or without speech is not an error (its faces remain):
        None, and the video path decides."""
        if not self.windows.enabled:
            return None
        try:
            return self.windows.prepare(ref, row)
        except FileError as err:
            if video and err.code in (ErrorCode.NO_AUDIO_STREAM, ErrorCode.TOO_SHORT):
                return None
            raise

    def _score_video(self, prepared: dict[int, Prepared], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Face model over every crop of the batch; each video file's probabilities (and frame rows)."""
        idx = [i for i, p in prepared.items() if p.video is not None]
        if not idx:
            return []
        try:
            per_item = self.video.score([prepared[i].video for i in idx])  # type: ignore[misc]
        except FileError as err:
            for i in idx:
                fill_error(rows[i], err.code, err.message)
                del prepared[i]
            return []
        frames: list[dict[str, Any]] = []
        for i, frame_p in zip(idx, per_item, strict=True):
            prepared[i].video_p = self.video.fill_video(rows[i], frame_p)
            if self.video.want_frames:
                frames += frame_rows(prepared[i].video, frame_p, rows[i])  # type: ignore[arg-type]
        return frames

    def _score_audio(self, prepared: dict[int, Prepared], rows: list[dict[str, Any]]) -> set[int]:
        """Transform and predict every vector whose statistics are known here; return the pending files."""
        pending = {i for i, p in prepared.items() if p.clip is not None and self.predictor.adaptive}
        parts: list[tuple[int, np.ndarray]] = []
        adapt: list[np.ndarray | None] = []
        windows: list[np.ndarray] = []  # per row: a window of a long recording, or a whole file
        for i, p in prepared.items():
            if p.windows is not None:
                z = self.predictor.transform.apply_own_groups(p.windows.X, p.windows.groups)
                adapt += self.predictor.own_adaptation(z, list(p.windows.groups))
                parts.append((i, z))
                windows.append(np.ones(len(z), dtype=bool))
            elif p.clip is not None and i not in pending:
                parts.append((i, self.predictor.transform.apply(p.clip[None, :], [None])))
                adapt.append(None)
                windows.append(np.zeros(1, dtype=bool))
        if not parts:
            return pending
        try:
            proba = self.predictor.predict(
                np.concatenate([z for _, z in parts]),
                adapt if self.predictor.adapts else None,
                np.concatenate(windows),
            )
        except Exception as exc:  # noqa: BLE001 - the model failing on a batch: error rows, not a crash
            for i, _ in parts:
                fill_error(rows[i], ErrorCode.PREDICT_FAILED, f"{type(exc).__name__}: {exc}")
                del prepared[i]
            return pending
        start = 0
        for i, z in parts:
            p_i, start = proba[start : start + len(z)], start + len(z)
            p = prepared[i]
            if p.windows is not None:
                p.segments = self.windows.finish(
                    p.windows, p_i, {"uri": rows[i][COL.uri], "etag": rows[i][COL.etag]}, rows[i]
                )
            else:
                p.audio_p = p_i[0]
        return pending

    def _pending_table(
        self, rows: list[dict[str, Any]], prepared: dict[int, Prepared], pending: set[int]
    ) -> pa.Table:
        out = []
        for i in sorted(pending):
            p = prepared[i]
            out.append({**rows[i], GROUP_COLUMN: p.group, FEATURES_COLUMN: np.asarray(p.clip, np.float32)})
        return pa.Table.from_pylist(out, schema=PENDING_SCHEMA)


def _changed(ref: dict[str, Any]) -> bool:
    """Whether a local file's size, or its listing etag (size + mtime; a manifest's own etag is not ours to
    recompute), differs now from what the listing said."""
    import re

    from aei_batch.io import storage

    try:
        size, etag = storage.stat_uri(ref["uri"])
    except FileError:
        return True  # gone since it was read
    if ref.get("size") is not None and size != ref["size"]:
        return True
    listed = ref.get("etag") or ""
    return bool(re.fullmatch(r"[0-9a-f]{16}", listed)) and etag != listed


def feature_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A list<float32> column of equal-length vectors as an (n, dim) float32 matrix, from its values buffer
    (no Python float per value: `to_pylist` of 2,048 rows of 935 features made 1.9 million of them)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if not n:
        return np.zeros((0, 0), dtype=np.float32)
    values = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return values.reshape(n, -1)


def gather_stats(pending: pa.Table, stats: RunStats) -> None:
    """Add a batch's pending vectors to the run's per-speaker statistics (driver side)."""
    groups = pending[GROUP_COLUMN].to_pylist()
    X = feature_matrix(pending[FEATURES_COLUMN]).astype(np.float64)
    for g in set(groups):
        if g is None:
            continue
        sel = [k for k, gg in enumerate(groups) if gg == g]
        stats.add_many(g, X[sel])


#: rows the driver normalises and predicts at a time when it finishes pending rows: the float64 copies
#: of normalisation and the models' intermediates are per block, not per spilled chunk (rows are
#: independent, so the predictions are the same)
PREDICT_BLOCK = 256


def _predict_in_blocks(
    predictor: Predictor, X: np.ndarray, group_stats: list[Any], adapt: list[Any] | None = None
) -> np.ndarray:
    blocks = [
        predictor.predict(
            predictor.transform.apply(X[i : i + PREDICT_BLOCK], group_stats[i : i + PREDICT_BLOCK]),
            None if adapt is None else adapt[i : i + PREDICT_BLOCK],
        )
        for i in range(0, len(X), PREDICT_BLOCK)
    ]
    return np.concatenate(blocks) if blocks else np.zeros((0, len(PROB_COLUMNS)))


def gather_adaptation(chunks: Iterable[pa.Table], stats: RunStats, predictor: Predictor) -> dict[str, Any]:
    """Driver side, a first pass over the pending rows once the run's speaker statistics are complete: each
    speaker group's adaptation statistics (models/adapt.py), summed block by block, for the groups with
    their own statistics. Memory: one small array per group, whatever the number of files."""
    acc: dict[str, Any] = {}
    if not predictor.adapts:
        return acc
    for chunk in chunks:
        groups = chunk[GROUP_COLUMN].to_pylist()
        X = feature_matrix(chunk[FEATURES_COLUMN])
        for i in range(0, len(X), PREDICT_BLOCK):
            block = groups[i : i + PREDICT_BLOCK]
            own = [k for k, g in enumerate(block) if _own_stats(stats, g, predictor.transform.min_files)]
            if not own:
                continue
            Z = predictor.transform.apply(X[i + np.asarray(own)], [stats.get(block[k]) for k in own])
            for g in {block[k] for k in own}:
                rows = [j for j, k in enumerate(own) if block[k] == g]
                st = predictor.model.adaptation_stats(Z[rows])
                acc[g] = st if g not in acc else acc[g] + st
    return acc


def _own_stats(stats: RunStats, group: str | None, min_files: int) -> bool:
    st = stats.get(group)
    return st is not None and st.n >= min_files


def finish_pending(
    pending: pa.Table,
    stats: RunStats,
    predictor: Predictor,
    ctx: RunContext,
    adaptation: dict[str, Any] | None = None,
) -> pa.Table:
    """Driver side: pending rows -> finished predictions rows, with the run's speaker statistics (and each
    group's adaptation statistics from `gather_adaptation`, when the model adapts)."""
    groups = pending[GROUP_COLUMN].to_pylist()
    group_stats = [stats.get(g) for g in groups]
    adapt = [adaptation.get(g) if g is not None else None for g in groups] if adaptation else None
    X = feature_matrix(pending[FEATURES_COLUMN])
    rows = pending.drop_columns([GROUP_COLUMN, FEATURES_COLUMN]).to_pylist()
    try:
        proba = _predict_in_blocks(predictor, X, group_stats, adapt)
    except Exception as exc:  # noqa: BLE001 - a model failure becomes rows, like in the workers
        for row in rows:
            fill_error(row, ErrorCode.PREDICT_FAILED, f"{type(exc).__name__}: {exc}")
        return rows_to_table(rows)
    for row, p in zip(rows, proba, strict=True):
        fuse_into_row(row, p, video_probs_of(row), ctx.options.get("fusion"))
    return rows_to_table(rows)


# --------------------------------------------------------------------------- training


FEATURES_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string()),
        pa.field("features", pa.list_(pa.float32())),
        # training with augmentation: the vectors of the file's augmented copies (features/augment.py)
        pa.field("augmented", pa.list_(pa.list_(pa.float32()))),
        pa.field("duration_s", pa.float64()),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
    ]
)


class FeatureTableStage:
    """Batch -> one row of features (or an error) per file; what training and evaluation consume. With
    `augment_seed`, each row also holds the vectors of the file's augmented copies, from the same decode
    (features/augment.py; each file's copies seeded by `file_seed(augment_seed, uri)`)."""

    def __init__(
        self, ctx: RunContext, feature_set_name: str, augment_seed: int | None = None, copy: str | None = None
    ) -> None:
        self.ctx = ctx
        self.feature_set_name = feature_set_name
        self.augment_seed = augment_seed
        self.copy = copy  # "telephone": each file's telephone copy instead (evaluation)

    def setup(self) -> None:
        self.featuriser = ClipFeaturiser(self.feature_set_name, self.ctx)

    def teardown(self) -> None:
        self.featuriser.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        from aei_batch.features.augment import file_seed

        refs = batch.to_pylist()
        seed = self.augment_seed

        def featurise(ref: dict[str, Any]) -> tuple[Any, float]:
            return self.featuriser.featurise(
                ref, augment_seed=None if seed is None else file_seed(seed, ref["uri"]), copy=self.copy
            )

        results = per_file(refs, featurise, name=lambda r: r["uri"])
        rows = []
        for ref, res in zip(refs, results, strict=True):
            row: dict[str, Any] = dict.fromkeys(FEATURES_SCHEMA.names)
            row["uri"] = ref["uri"]
            if isinstance(res, FileFailure):
                row["error_code"], row["error_message"] = res.code, res.message
            elif seed is None:
                row["features"], row["duration_s"] = res[0].tolist(), res[1]
            else:
                row["features"], row["augmented"], row["duration_s"] = (
                    res[0][0].tolist(),
                    res[0][1:].tolist(),
                    res[1],
                )
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)
