"""The video scorer: decode sampled frames, crop faces, run the face model; late fusion with the audio track.

One `VideoScorer` lives in each worker next to the audio model. It is cheap to build: the face
cascade and the face model (TensorFlow) load on the first video file, so audio-only runs never
import TensorFlow. Per batch, `prepare` runs per file (decode + crops + the file's audio features)
and `score` runs once (all crops of the batch in one model call). The audio track's vector goes through
the same speaker transform and audio model as a clip's, and `fuse_into_row` combines the two wherever the
audio probabilities become known (in the worker, or on the driver for speaker-adaptive models). Options
come from `RunContext.options` (set by `scoring.job.run_score`):

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
    data: bytes,
    name: str,
    sampling: Sampling,
    *,
    max_duration_s: float | None,
    audio_sr: int,
    audio: bool = True,
) -> DecodedAV:
    """Sampled frames -> face crops, and the audio track, of one file's bytes.

    Runs in the worker's decoder child (`limits.Watchdog`) so that one timeout covers the whole decode,
    the bytes cross the pipe once, and only 64x64 crops come back instead of full frames (a 720p frame
    is 0.9 MB; a crop 4 kB). Audio problems listed in `_AUDIO_OPTIONAL` leave the file video-only.
    `audio=False`: frames only (a long file's audio track is scored in windows, streamed).
    """
    from aei_batch.decode.audio import decode_audio
    from aei_batch.features.faces import default_cropper

    clip = decode_video(data, name, sampling, max_duration_s=max_duration_s)
    crops = default_cropper().crop_all(clip.frames)
    indices, times = clip.indices, clip.times_s
    del clip
    track, note = None, None
    try:
        if audio:
            track = decode_audio(data, name, sr=audio_sr, max_duration_s=max_duration_s)
    except FileError as err:
        if err.code not in _AUDIO_OPTIONAL:
            raise
        note = f"{err.code}: {err.message}"
    return DecodedAV(crops, indices, times, track, note)


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
    """Lazily loaded face pipeline, shared by all video files a worker sees.

    `prepare` runs per file (decode + crops + the file's audio-track features, in the decoder child);
    `score` runs once per batch (all crops of the batch in one face-model call) and gives each file its
    video probabilities and, when a frames table is asked for, its frame rows. Fusion with the audio side
    happens where the audio probabilities are known (`fuse_into_row`)."""

    def __init__(self, ctx: Any, featuriser: Any) -> None:
        opts = ctx.options or {}
        self.ctx = ctx
        self.featuriser = featuriser
        self.spec = str(opts.get("video_model") or "pretrained-fer")
        self.model_name = opts.get("video_model_name")
        self.sampling = Sampling(
            every_n=int(opts.get("frame_every") or DEFAULT_EVERY_N), fps=opts.get("frame_fps")
        )
        self.want_frames = bool(opts.get("frames_table"))
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from aei_batch.models.face import load_video_model

            self._model = load_video_model(self.spec, self.model_name)
        return self._model

    def prepare(
        self, ref: dict[str, Any], row: dict[str, Any], audio: bool = True, data: bytes | None = None
    ) -> VideoItem:
        """Read, decode and crop one video file; its audio features too when it has a usable audio track
        (and `audio`: a long file's track is scored in windows instead, by the caller). `data`: its bytes
        when the caller already read them."""
        from aei_batch.decode.audio import ANALYSIS_SR
        from aei_batch.scoring.inputs import fetch

        data = fetch(ref, self.ctx) if data is None else data
        try:
            dec = self.featuriser.run(
                decode_faces_and_audio,
                data,
                ref["uri"],
                self.sampling,
                max_duration_s=self.ctx.max_duration_s,
                audio_sr=ANALYSIS_SR,
                audio=audio,
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
            from aei_batch.features.clip import extract_checked

            item.audio_vec = extract_checked(self.featuriser.fs, dec.audio.y, dec.audio.sr)
            row[COL.duration_s] = dec.audio.duration_s
        return item

    def score(self, items: list[VideoItem]) -> list[np.ndarray]:
        """Per-frame probabilities (n_frames, 8) of each item: one face-model call for the whole batch.
        Raises FileError(PREDICT_FAILED) when the face model fails (every item of the call fails)."""
        if not items:
            return []
        model = self.model
        crops = np.stack([c.crop for it in items for c in it.crops])
        try:
            probs = model.predict_proba8(crops)
        except Exception as exc:  # noqa: BLE001 - the face model failing on a batch: error rows, not a crash
            raise FileError(ErrorCode.PREDICT_FAILED, f"face model: {type(exc).__name__}: {exc}") from None
        out, start = [], 0
        for it in items:
            out.append(probs[start : start + len(it.crops)])
            start += len(it.crops)
        return out

    def fill_video(self, row: dict[str, Any], frame_p: np.ndarray) -> np.ndarray:
        """The file's video probabilities into `row` (video_p_* and the video model); returned too."""
        row[COL.video_model] = self._model.label if self._model is not None else self.spec
        video_p = aggregate_frames(frame_p)
        row.update({c: float(p) for c, p in zip(VIDEO_PROB_COLUMNS, video_p, strict=True)})
        return video_p


def video_probs_of(row: dict[str, Any]) -> np.ndarray | None:
    """The video probabilities a row carries (None for files scored without video)."""
    vals = [row.get(c) for c in VIDEO_PROB_COLUMNS]
    return None if any(v is None for v in vals) else np.asarray(vals, dtype=np.float64)


def fuse_into_row(
    row: dict[str, Any], audio_p: np.ndarray | None, video_p: np.ndarray | None, fusion: dict[str, Any] | None
) -> None:
    """The file's prediction from whichever modalities it has: audio, video, or both fused (late fusion
    with the run's fusion spec). The same code finishes rows in the workers and on the driver."""
    from aei_batch.scoring.rows import fill_prediction

    if audio_p is not None and video_p is not None:
        spec = FusionSpec.from_dict(fusion)
        row.update({c: float(p) for c, p in zip(AUDIO_PROB_COLUMNS, audio_p, strict=True)})
        row[COL.fusion_audio_weight] = spec.audio_weight
        fill_prediction(row, fuse(audio_p, video_p, spec.audio_weight, spec.method), "audio+video")
    elif video_p is not None:
        fill_prediction(row, video_p, "video")
    elif audio_p is not None:
        fill_prediction(row, audio_p, "audio")


def frame_rows(item: VideoItem, frame_p: np.ndarray, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-frame rows (FRAMES_SCHEMA): position, face box, 8 probabilities, the top two emotions, and the
    file's identity and run columns (the frames table joins the predictions table on uri and run_id)."""
    ident = {c: row[c] for c in (COL.uri, COL.etag, COL.video_model, COL.run_id, COL.run_date, COL.scored_at)}
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
                **ident,
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
    from aei_batch.scoring.rows import input_modality

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
