"""Names, label order, RAVDESS filename parsing and the output schema: one source of truth.

Stages and sinks import column names from here; nothing else spells them as literals.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

log = logging.getLogger(__name__)

#: RAVDESS emotion codes 01..08, in this order. Every probability vector uses this order.
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)
N_CLASSES = len(EMOTIONS)
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{e}" for e in EMOTIONS)
AUDIO_PROB_COLUMNS: tuple[str, ...] = tuple(f"audio_p_{e}" for e in EMOTIONS)
VIDEO_PROB_COLUMNS: tuple[str, ...] = tuple(f"video_p_{e}" for e in EMOTIONS)

MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "kids are talking by the door", 2: "dogs are sitting by the door"}

# Status values of a row.
STATUS_OK = "ok"
STATUS_ERROR = "error"

_RAVDESS_LIKE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class RavdessLabels:
    """Labels encoded in a RAVDESS filename. All None for names that are not RAVDESS-style."""

    modality: str | None = None
    vocal_channel: str | None = None
    emotion: str | None = None
    intensity: str | None = None
    statement: int | None = None
    repetition: int | None = None
    actor: int | None = None
    gender: str | None = None

    def as_columns(self) -> dict[str, Any]:
        return {
            COL.label_modality: self.modality,
            COL.label_vocal_channel: self.vocal_channel,
            COL.label_emotion: self.emotion,
            COL.label_intensity: self.intensity,
            COL.label_statement: self.statement,
            COL.label_repetition: self.repetition,
            COL.actor: self.actor,
            COL.gender: self.gender,
        }


def stem_of(uri: str) -> str:
    """The file name without directories and extension, for local paths and s3:// keys alike."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def parse_ravdess_name(uri: str) -> RavdessLabels:
    """Parse `03-01-06-01-02-01-12.wav` style names.

    Names that are not seven two-digit fields give all-None labels (customer files, no warning).
    Names that look like RAVDESS but carry an invalid code give all-None labels and a warning.
    """
    m = _RAVDESS_LIKE.match(stem_of(uri))
    if not m:
        return RavdessLabels()
    mod, chan, emo, inten, stmt, rep, actor = (int(g) for g in m.groups())
    problems = []
    if mod not in MODALITIES:
        problems.append(f"modality {mod:02d} (expected 01-03)")
    if chan not in VOCAL_CHANNELS:
        problems.append(f"vocal channel {chan:02d} (expected 01-02)")
    if not 1 <= emo <= N_CLASSES:
        problems.append(f"emotion {emo:02d} (expected 01-08)")
    if inten not in INTENSITIES:
        problems.append(f"intensity {inten:02d} (expected 01-02)")
    if stmt not in STATEMENTS:
        problems.append(f"statement {stmt:02d} (expected 01-02)")
    if rep not in (1, 2):
        problems.append(f"repetition {rep:02d} (expected 01-02)")
    if not 1 <= actor <= 24:
        problems.append(f"actor {actor:02d} (expected 01-24)")
    if problems:
        log.warning("RAVDESS-like name %r has invalid codes: %s; labels left empty", uri, ", ".join(problems))
        return RavdessLabels()
    return RavdessLabels(
        modality=MODALITIES[mod],
        vocal_channel=VOCAL_CHANNELS[chan],
        emotion=EMOTIONS[emo - 1],
        intensity=INTENSITIES[inten],
        statement=stmt,
        repetition=rep,
        actor=actor,
        gender="male" if actor % 2 == 1 else "female",
    )


class _Columns:
    """Column names of the predictions table (attribute access keeps typos out of stages)."""

    uri = "uri"
    size_bytes = "size_bytes"
    etag = "etag"
    input_modality = "input_modality"
    label_modality = "label_modality"
    label_vocal_channel = "label_vocal_channel"
    label_emotion = "label_emotion"
    label_intensity = "label_intensity"
    label_statement = "label_statement"
    label_repetition = "label_repetition"
    actor = "actor"
    gender = "gender"
    speaker_id = "speaker_id"
    duration_s = "duration_s"
    predicted_emotion = "predicted_emotion"
    confidence = "confidence"
    second_emotion = "second_emotion"
    second_confidence = "second_confidence"
    modalities_used = "modalities_used"
    model_name = "model_name"
    model_version = "model_version"
    feature_set = "feature_set"
    run_id = "run_id"
    run_date = "run_date"
    scored_at = "scored_at"
    status = "status"
    error_code = "error_code"
    error_message = "error_message"
    extra = "extra"
    # Per-file rollup of a segmented (long) file; null when scored as one clip (docs/SEGMENTS.md).
    n_segments = "n_segments"
    speech_share = "speech_share"
    dominant_emotion = "dominant_emotion"
    emotion_shares = "emotion_shares"
    # Audio-video files (docs/VIDEO.md): per-modality probabilities, face counts, video model, fusion weight.
    frames_sampled = "frames_sampled"
    faces_found = "faces_found"
    video_model = "video_model"
    fusion_audio_weight = "fusion_audio_weight"


COL = _Columns()

#: The predictions table schema. `extra` carries manifest columns as a JSON object string.
PREDICTIONS_SCHEMA = pa.schema(
    [
        pa.field(COL.uri, pa.string(), nullable=False),
        pa.field(COL.size_bytes, pa.int64()),
        pa.field(COL.etag, pa.string()),
        pa.field(COL.input_modality, pa.string()),
        pa.field(COL.label_modality, pa.string()),
        pa.field(COL.label_vocal_channel, pa.string()),
        pa.field(COL.label_emotion, pa.string()),
        pa.field(COL.label_intensity, pa.string()),
        pa.field(COL.label_statement, pa.int32()),
        pa.field(COL.label_repetition, pa.int32()),
        pa.field(COL.actor, pa.int32()),
        pa.field(COL.gender, pa.string()),
        pa.field(COL.speaker_id, pa.string()),
        pa.field(COL.duration_s, pa.float64()),
        pa.field(COL.predicted_emotion, pa.string()),
        pa.field(COL.confidence, pa.float64()),
        pa.field(COL.second_emotion, pa.string()),
        pa.field(COL.second_confidence, pa.float64()),
        *[pa.field(c, pa.float64()) for c in PROB_COLUMNS],
        pa.field(COL.modalities_used, pa.string()),
        pa.field(COL.model_name, pa.string()),
        pa.field(COL.model_version, pa.string()),
        pa.field(COL.feature_set, pa.string()),
        pa.field(COL.run_id, pa.string(), nullable=False),
        pa.field(COL.run_date, pa.date32(), nullable=False),
        pa.field(COL.scored_at, pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field(COL.status, pa.string(), nullable=False),
        pa.field(COL.error_code, pa.string()),
        pa.field(COL.error_message, pa.string()),
        pa.field(COL.extra, pa.string()),
        pa.field(COL.n_segments, pa.int32()),  # windows scored (all channels)
        pa.field(COL.speech_share, pa.float64()),  # voiced share of the file's time (mean over channels)
        pa.field(COL.dominant_emotion, pa.string()),  # the emotion holding the most speech time
        pa.field(COL.emotion_shares, pa.string()),  # JSON object: emotion -> share of speech time
        *[pa.field(c, pa.float64()) for c in AUDIO_PROB_COLUMNS],  # the audio model's p (docs/VIDEO.md)
        *[pa.field(c, pa.float64()) for c in VIDEO_PROB_COLUMNS],  # mean of the sampled frames' p
        pa.field(COL.frames_sampled, pa.int32()),
        pa.field(COL.faces_found, pa.int32()),  # frames with a detected face (the others: centre crop)
        pa.field(COL.video_model, pa.string()),  # name@version of the face model
        pa.field(COL.fusion_audio_weight, pa.float64()),  # audio weight of the late fusion (video = 1 - it)
    ]
)


class _SegmentColumns:
    """Column names of the segments table that the predictions table does not have."""

    channel = "channel"
    segment_index = "segment_index"
    start_s = "start_s"
    end_s = "end_s"
    modality = "modality"
    top_emotion = "top_emotion"
    top_confidence = "top_confidence"
    speech_share = "speech_share"


SEG = _SegmentColumns()

#: The segments table: one row per scored window of a segmented file (docs/SEGMENTS.md). `channel` is
#: null when the channels were mixed to mono, else the 0-based source channel (--per-channel).
SEGMENTS_SCHEMA = pa.schema(
    [
        pa.field(COL.uri, pa.string(), nullable=False),
        pa.field(COL.etag, pa.string()),
        pa.field(SEG.channel, pa.int32()),
        pa.field(SEG.segment_index, pa.int32(), nullable=False),
        pa.field(SEG.start_s, pa.float64(), nullable=False),
        pa.field(SEG.end_s, pa.float64(), nullable=False),
        pa.field(SEG.modality, pa.string()),
        *[pa.field(c, pa.float64()) for c in PROB_COLUMNS],
        pa.field(SEG.top_emotion, pa.string()),
        pa.field(SEG.top_confidence, pa.float64()),
        pa.field(SEG.speech_share, pa.float64()),
        pa.field(COL.model_name, pa.string()),
        pa.field(COL.model_version, pa.string()),
        pa.field(COL.feature_set, pa.string()),
        pa.field(COL.run_id, pa.string(), nullable=False),
        pa.field(COL.run_date, pa.date32(), nullable=False),
        pa.field(COL.scored_at, pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class _FrameColumns:
    """Column names of the per-frame table (docs/VIDEO.md) that the predictions table does not have."""

    frame_index = "frame_index"
    time_s = "time_s"
    face_found = "face_found"
    face_x = "face_x"
    face_y = "face_y"
    face_w = "face_w"
    face_h = "face_h"
    top_emotion = "top_emotion"
    top_confidence = "top_confidence"


FRM = _FrameColumns()

#: One row per sampled video frame (aei-batch score --frames-table): the face box used (the centre
#: crop when face_found is false), the face model's 8 probabilities and its top two emotions.
FRAME_FIELDS = [
    pa.field(FRM.frame_index, pa.int32(), nullable=False),
    pa.field(FRM.time_s, pa.float64()),
    pa.field(FRM.face_found, pa.bool_(), nullable=False),
    pa.field(FRM.face_x, pa.int32()),
    pa.field(FRM.face_y, pa.int32()),
    pa.field(FRM.face_w, pa.int32()),
    pa.field(FRM.face_h, pa.int32()),
    *[pa.field(c, pa.float64()) for c in PROB_COLUMNS],
    pa.field(FRM.top_emotion, pa.string()),
    pa.field(FRM.top_confidence, pa.float64()),
    pa.field(COL.second_emotion, pa.string()),
    pa.field(COL.second_confidence, pa.float64()),
]
FRAMES_SCHEMA = pa.schema(
    [
        pa.field(COL.uri, pa.string(), nullable=False),
        pa.field(COL.etag, pa.string()),
        *FRAME_FIELDS,
        pa.field(COL.video_model, pa.string()),
        pa.field(COL.run_id, pa.string(), nullable=False),
        pa.field(COL.run_date, pa.date32(), nullable=False),
        pa.field(COL.scored_at, pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class FileRef:
    """One input file: where it is and what identifies its content.

    `error_code`/`error_message` are set when listing already decided the file's fate (a manifest uri
    outside the allowed roots, a FIFO, a name that is not UTF-8: aei_batch/io/storage.py); the scoring
    stage turns such a ref into its error row without reading it.
    """

    uri: str
    size: int | None = None
    etag: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "size": self.size,
            "etag": self.etag,
            "extra": dict(self.extra),
            "error_code": self.error_code,
            "error_message": self.error_message,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRef:
        size = d.get("size")
        extra = d.get("extra") or {}
        return cls(
            uri=str(d["uri"]),
            size=None if size is None or size != size else int(size),
            etag=d.get("etag"),
            extra={str(k): str(v) for k, v in dict(extra).items() if v is not None},
            error_code=d.get("error_code"),
            error_message=d.get("error_message"),
        )
