"""The video side of `ScoreStage`: decode sampled frames, crop faces, run the face model, fuse with audio.

One `VideoScorer` lives in each worker next to the audio model. It is cheap to build: the face
cascade and the face model (TensorFlow) load on the first video file, so audio-only runs never
import TensorFlow. Per batch, `prepare` runs per file (decode + crops + the file's audio features)
and `finish` runs once (all crops of the batch in one model call, then per-file aggregation and
fusion). Options come from `RunContext.options` (set by `pipeline.run_score`):

    video_model        "pretrained-fer" (default) or a video model directory
    video_model_name   which model of that directory (default: the card's default)
    frame_every        keep every N-th frame (20)          frame_fps   or N frames per second
    frames_table       True: attach per-frame rows for the frames table
    fusion             optional {"method", "audio_weight"} override of the model card's fusion
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aei_batch.decode.audio import AudioClip
from aei_batch.decode.video import DEFAULT_EVERY_N, Sampling, decode_video
from aei_batch.errors import ErrorCode, FileError
from aei_batch.features.faces import FaceCrop
from aei_batch.models.fusion import FusionSpec, aggregate_frames, fuse
from aei_batch.records import (
    AUDIO_PROB_COLUMNS,
    COL,
    EMOTIONS,
    FRM,
    PROB_COLUMNS,
    STATUS_OK,
    VIDEO_PROB_COLUMNS,
)

log = logging.getLogger(__name__)

# Audio problems that leave a video file scoreable from its frames alone.
_AUDIO_OPTIONAL = (
    ErrorCode.NO_AUDIO_STREAM,
    ErrorCode.TOO_SHORT,
    ErrorCode.DECODE_FAILED,
    ErrorCode.INVALID_AUDIO,
)


@dataclass
class DecodedAV:
    """What the decoder child sends back for one video file: face crops (not frames) and the audio."""

    crops: list[FaceCrop]
    indices: list[int]
    times_s: list[float]
    audio: AudioClip | None
    audio_note: str | None


def decode_faces_and_audio(
    data: bytes, name: str, sampling: Sampling, *, max_duration_s: float | None, audio_sr: int
) -> DecodedAV:
    """Sampled frames -> face crops, and the audio track, of one file's bytes.

    Runs in the worker's decoder child (`limits.Watchdog`) so that one timeout covers the whole decode,
    the bytes cross the pipe once, and only 64x64 crops come back instead of full frames (a 720p frame
    is 0.9 MB; a crop 4 kB). Audio problems listed in `_AUDIO_OPTIONAL` leave the file video-only.
    """
    from aei_batch.decode.audio import decode_audio
    from aei_batch.features.faces import default_cropper

    clip = decode_video(data, name, sampling, max_duration_s=max_duration_s)
    crops = default_cropper().crop_all(clip.frames)
    indices, times = clip.indices, clip.times_s
    del clip
    audio, note = None, None
    try:
        audio = decode_audio(data, name, sr=audio_sr, max_duration_s=max_duration_s)
    except FileError as err:
        if err.code not in _AUDIO_OPTIONAL:
            raise
        note = f"{err.code}: {err.message}"
    return DecodedAV(crops, indices, times, audio, note)


@dataclass
class VideoItem:
    """One video file between `prepare` and `finish`."""

    has_video: bool
    data: bytes | None = None  # kept only when there is no video track (the caller scores the audio)
    crops: list[FaceCrop] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    audio_vec: np.ndarray | None = None
    audio_note: str | None = None


class VideoScorer:
    """Lazily loaded face pipeline + late fusion, shared by all video files a worker sees."""

    def __init__(self, ctx: Any, features: Any) -> None:
        opts = ctx.options or {}
        self.ctx = ctx
        self.features = features
        self.spec = str(opts.get("video_model") or "pretrained-fer")
        self.model_name = opts.get("video_model_name")
        self.sampling = Sampling(
            every_n=int(opts.get("frame_every") or DEFAULT_EVERY_N), fps=opts.get("frame_fps")
        )
        self.want_frames = bool(opts.get("frames_table"))
        self.fusion_override: dict[str, Any] | None = opts.get("fusion")
        self._model: Any = None
        self._fusion: FusionSpec | None = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from aei_batch.models.face import load_video_model

            self._model = load_video_model(self.spec, self.model_name)
            self._fusion = FusionSpec.from_dict(self.fusion_override or self._model.fusion)
        return self._model

    def prepare(self, ref: dict[str, Any], row: dict[str, Any]) -> VideoItem:
        """Read, decode and crop one video file; its audio features too when it has a usable audio track."""
        from aei_batch.decode.audio import ANALYSIS_SR
        from aei_batch.scoring.stage import fetch

        data = fetch(ref, self.ctx)
        decoder = getattr(self.features, "decoder", None)
        call = decoder.call if decoder is not None else (lambda fn, *a, **k: fn(*a, **k))
        try:
            dec = call(
                decode_faces_and_audio,
                data,
                ref["uri"],
                self.sampling,
                max_duration_s=self.ctx.max_duration_s,
                audio_sr=ANALYSIS_SR,
            )
        except FileError as err:
            if err.code == ErrorCode.NO_VIDEO_STREAM:
                return VideoItem(has_video=False, data=data)
            raise
        del data
        item = VideoItem(
            True, crops=dec.crops, indices=dec.indices, times_s=dec.times_s, audio_note=dec.audio_note
        )
        row[COL.frames_sampled] = len(dec.crops)
        row[COL.faces_found] = sum(c.found for c in dec.crops)
        row[COL.duration_s] = float(dec.times_s[-1]) if dec.times_s else None
        if dec.audio is not None:
            item.audio_vec = self._audio_features(dec.audio)
            row[COL.duration_s] = dec.audio.duration_s
        return item

    def _audio_features(self, clip: AudioClip) -> np.ndarray:
        from aei_batch.features.clip import extract_checked

        return extract_checked(self.features.fs, clip.y, clip.sr)

    def finish(
        self, rows: list[dict[str, Any]], items: dict[int, VideoItem]
    ) -> list[list[dict[str, Any]] | None]:
        """Face model over every crop of the batch, then per-file video probabilities and fusion."""
        frames: list[list[dict[str, Any]] | None] = [None] * len(rows)
        if not items:
            return frames
        model = self.model
        assert self._fusion is not None
        order = list(items)
        crops = np.stack([c.crop for i in order for c in items[i].crops])
        try:
            probs = model.predict_proba8(crops)
        except Exception as exc:  # noqa: BLE001 - the face model failing on a batch: error rows, not a crash
            for i in order:
                _error(rows[i], ErrorCode.PREDICT_FAILED, f"face model: {type(exc).__name__}: {exc}")
            return frames
        start = 0
        for i in order:
            n = len(items[i].crops)
            frame_p = probs[start : start + n]
            start += n
            self._fill(rows[i], items[i], frame_p)
            if self.want_frames:
                frames[i] = frame_rows(items[i], frame_p)
        return frames

    def _fill(self, row: dict[str, Any], item: VideoItem, frame_p: np.ndarray) -> None:
        from aei_batch.scoring.stage import fill_prediction

        assert self._fusion is not None
        row[COL.video_model] = self._model.label if self._model is not None else self.spec
        video_p = aggregate_frames(frame_p)
        row.update({c: float(p) for c, p in zip(VIDEO_PROB_COLUMNS, video_p, strict=True)})
        if item.audio_vec is None:
            fill_prediction(row, video_p, "video")
            return
        if row.get(COL.status) != STATUS_OK:  # the audio model failed on this batch: keep its error row
            return
        audio_p = np.array([row[c] for c in PROB_COLUMNS], dtype=np.float64)
        row.update({c: float(p) for c, p in zip(AUDIO_PROB_COLUMNS, audio_p, strict=True)})
        fused = fuse(audio_p, video_p, self._fusion.audio_weight, self._fusion.method)
        row[COL.fusion_audio_weight] = self._fusion.audio_weight
        fill_prediction(row, fused, "audio+video")


def _error(row: dict[str, Any], code: ErrorCode, message: str) -> None:
    from aei_batch.scoring.stage import fill_error

    fill_error(row, code, message)


def frame_rows(item: VideoItem, frame_p: np.ndarray) -> list[dict[str, Any]]:
    """Per-frame rows (FRAME_FIELDS): position, face box, 8 probabilities and the top two emotions."""
    out = []
    for k, crop in enumerate(item.crops):
        p = frame_p[k]
        top = np.argsort(-p, kind="stable")[:2]
        x, y, w, h = crop.box
        out.append(
            {
                FRM.frame_index: int(item.indices[k]),
                FRM.time_s: float(item.times_s[k]),
                FRM.face_found: bool(crop.found),
                FRM.face_x: x,
                FRM.face_y: y,
                FRM.face_w: w,
                FRM.face_h: h,
                **{c: float(v) for c, v in zip(PROB_COLUMNS, p, strict=True)},
                FRM.top_emotion: EMOTIONS[int(top[0])],
                FRM.top_confidence: float(p[top[0]]),
                COL.second_emotion: EMOTIONS[int(top[1])],
                COL.second_confidence: float(p[top[1]]),
            }
        )
    return out


# --------------------------------------------------------------------------- driver side (pipeline.run_score)


def validate_video_options(frame_every: int, frame_fps: float | None, audio_weight: float | None) -> None:
    """Fail fast on bad video flags (ConfigError names the flag)."""
    from aei_batch.errors import ConfigError

    if frame_every < 1:
        raise ConfigError(f"--frame-every must be at least 1, got {frame_every}")
    if frame_fps is not None and frame_fps <= 0:
        raise ConfigError(
            f"--frame-fps must be positive, got {frame_fps}", hint="or leave it out to use --frame-every"
        )
    if audio_weight is not None and not 0.0 <= audio_weight <= 1.0:
        raise ConfigError(f"--audio-weight must be between 0 and 1, got {audio_weight}")


def video_run_options(opts: Any, uris: list[str]) -> dict[str, Any]:
    """RunContext.options for the video side; checks the video model only when video files were listed."""
    from aei_batch.scoring.stage import input_modality

    out: dict[str, Any] = {
        "video_model": opts.video_model,
        "video_model_name": opts.video_model_name,
        "frame_every": opts.frame_every,
        "frame_fps": opts.frame_fps,
        "frames_table": bool(opts.frames_table),
    }
    if any(input_modality(u) == "video" for u in uris):
        from aei_batch.models.face import resolve_video_model

        ref = resolve_video_model(opts.video_model, opts.video_model_name)  # ModelError before any scoring
        fusion = FusionSpec.from_dict(ref.fusion)
        if opts.audio_weight is not None:
            fusion = FusionSpec(
                method=fusion.method, audio_weight=float(opts.audio_weight), source="--audio-weight"
            )
        out["fusion"] = fusion.to_dict()
    return out
