"""Test media made on the fly: WAV/FLAC/OGG/MP3/M4A audio, MP4/MOV/WEBM/AVI video with a face that OpenCV's
Haar frontal-face cascade detects, a RAVDESS-like 720p clip, RAVDESS file names, and malformed inputs.

Nothing here reads a committed binary fixture. Audio arrays are float32 in [-1, 1], shaped ``(n,)`` or
``(n, channels)``. Video frames are drawn with OpenCV (BGR) and encoded with PyAV.

PyAV/FFmpeg quirks this module works around:

* Lossy tracks do not decode to the exact length: a 1.0 s 48 kHz AAC track gives 48,128 samples, MP3 in
  AVI 49,536 (MP3 files keep LAME's gapless header and come back exact), and FFmpeg decodes libsndfile's
  Ogg Vorbis up to a block short or long (57,472 for 57,600; soundfile reads it back exactly).
* FFmpeg's own ``vorbis`` encoder is experimental and refused; ``.ogg`` is written by soundfile/libsndfile.
* ``libopus`` takes only 8/12/16/24/48 kHz and always decodes at 48 kHz; WebM audio is written at 48 kHz.
* H.264 with ``yuv420p`` needs even width and height.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import soundfile as sf

PathLike = str | os.PathLike[str]

BACKGROUND_BGR = (90, 120, 60)
SKIN_BGR = (150, 180, 225)
_SOUNDFILE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
_PYAV_AUDIO = {".mp3": ("mp3", "libmp3lame"), ".m4a": ("ipod", "aac"), ".mp4": ("mp4", "aac")}
# suffix -> (container format, default video codec, audio codec)
_VIDEO_CONTAINERS = {
    ".mp4": ("mp4", "h264", "aac"),
    ".m4v": ("mp4", "h264", "aac"),
    ".mov": ("mov", "h264", "aac"),
    ".mkv": ("matroska", "h264", "aac"),
    ".webm": ("webm", "vp9", "libopus"),
    ".avi": ("avi", "mpeg4", "libmp3lame"),
}
_VIDEO_CODEC_ALIASES = {"h264": "libx264", "vp8": "libvpx", "vp9": "libvpx-vp9"}


# --------------------------------------------------------------------------- audio signals


def sine(
    freq: float = 440.0, seconds: float = 1.0, sr: int = 16000, channels: int = 1, amp: float = 0.5
) -> np.ndarray:
    """A sine tone as float32, shape ``(n,)`` for mono or ``(n, channels)``."""
    t = np.arange(int(round(seconds * sr)), dtype=np.float64) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return y if channels == 1 else np.repeat(y[:, None], channels, axis=1)


def noise(
    seconds: float = 1.0, sr: int = 16000, channels: int = 1, amp: float = 0.3, seed: int = 0
) -> np.ndarray:
    """Uniform white noise in ``[-amp, amp]`` as float32, shape ``(n,)`` or ``(n, channels)``."""
    shape = (int(round(seconds * sr)),) if channels == 1 else (int(round(seconds * sr)), channels)
    return np.random.default_rng(seed).uniform(-amp, amp, shape).astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    """Encode ``y`` with soundfile into an in-memory file (WAV unless ``fmt`` says otherwise)."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def sine_wav_bytes(
    freq: float = 440.0, seconds: float = 1.0, sr: int = 16000, channels: int = 1, subtype: str = "PCM_16"
) -> bytes:
    """A WAV file of a sine tone, as bytes."""
    return wav_bytes(sine(freq, seconds, sr, channels), sr, subtype)


def noise_wav_bytes(
    seconds: float = 1.0, sr: int = 16000, channels: int = 1, subtype: str = "PCM_16", seed: int = 0
) -> bytes:
    """A WAV file of white noise, as bytes."""
    return wav_bytes(noise(seconds, sr, channels, seed=seed), sr, subtype)


# --------------------------------------------------------------------------- audio files


def write_audio(path: PathLike, y: np.ndarray, sr: int, *, subtype: str | None = None) -> Path:
    """Write ``y`` to ``path``; the suffix picks the format.

    ``.wav``/``.flac``/``.ogg`` (Vorbis) go through soundfile (``subtype`` overrides its default);
    ``.mp3`` (LAME), ``.m4a`` and ``.mp4`` (AAC, audio only) through PyAV.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _SOUNDFILE_FORMATS:
        fmt, default_subtype = _SOUNDFILE_FORMATS[suffix]
        sf.write(path, y, sr, format=fmt, subtype=subtype or default_subtype)
    elif suffix in _PYAV_AUDIO:
        _write_pyav_audio(path, *_PYAV_AUDIO[suffix], y, sr)
    else:
        raise ValueError(f"unsupported audio suffix {suffix!r}: use one of .wav .flac .ogg .mp3 .m4a .mp4")
    return path


def write_audio_only_mp4(
    path: PathLike, *, seconds: float = 1.0, freq: float = 440.0, sr: int = 48000, channels: int = 1
) -> Path:
    """An MP4 container (whatever the suffix) whose only stream is an AAC sine tone: no video track."""
    return _write_pyav_audio(Path(path), "mp4", "aac", sine(freq, seconds, sr, channels), sr)


def _write_pyav_audio(path: Path, container: str, codec: str, y: np.ndarray, sr: int) -> Path:
    """Write ``y`` as the single audio stream of a ``container`` file."""
    with av.open(str(path), "w", format=container) as out:
        _mux_audio(out, out.add_stream(codec, rate=sr, layout=_layout(y)), y, sr)
    return path


def _layout(y: np.ndarray) -> str:
    """FFmpeg channel layout name for ``(n,)`` or ``(n, channels)`` samples."""
    channels = 1 if y.ndim == 1 else y.shape[1]
    layouts = {1: "mono", 2: "stereo", 6: "5.1"}
    if channels not in layouts:
        raise ValueError(f"PyAV output supports 1, 2 or 6 channels, not {channels}")
    return layouts[channels]


def _audio_frame(y: np.ndarray, sr: int, pts: int) -> av.AudioFrame:
    """A planar float frame from ``(n,)`` or ``(n, channels)`` samples."""
    planar = np.ascontiguousarray(y.T if y.ndim == 2 else y[None, :], dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=_layout(y))
    frame.sample_rate = sr
    frame.pts = pts
    return frame


def _mux_audio(out: av.container.OutputContainer, stream, y: np.ndarray, sr: int, chunk: int = 4096) -> None:
    """Encode ``y`` in chunks (PyAV re-frames them to the codec's frame size) and flush."""
    for start in range(0, len(y), chunk):
        _encode(out, stream, _audio_frame(y[start : start + chunk], sr, start))
    _encode(out, stream, None)


# --------------------------------------------------------------------------- drawing


def draw_face(img: np.ndarray, center: tuple[int, int], width: int) -> np.ndarray:
    """Draw a frontal cartoon face (skin ellipse, hair, brows, eyes, nose, mouth) in place; return ``img``.

    Proportions were tuned against ``haarcascade_frontalface_default.xml``: detected at face widths of
    60–200 px with scaleFactor 1.05–1.3 and minNeighbors 3–8. The cascade's box is about 1.35x ``width``.
    """
    cx, cy = center
    fw, fh = width, int(width * 1.3)
    cv2.ellipse(img, (cx, cy), (fw // 2, fh // 2), 0, 0, 360, SKIN_BGR, -1)
    cv2.ellipse(img, (cx, cy - fh // 2 + fh // 10), (fw // 2, fh // 6), 0, 180, 360, (30, 40, 60), -1)
    eye_y = cy - fh // 10
    for side in (-1, 1):
        eye = (cx + side * (fw // 5), eye_y)
        cv2.ellipse(img, (eye[0], eye_y - fh // 12), (fw // 9, fh // 40 + 1), 0, 0, 360, (40, 50, 70), -1)
        cv2.ellipse(img, eye, (fw // 10, fh // 22), 0, 0, 360, (235, 235, 235), -1)
        cv2.circle(img, eye, fh // 28, (30, 30, 30), -1)
    cv2.ellipse(img, (cx, cy + fh // 12), (fw // 14, fh // 20), 0, 0, 180, (110, 135, 180), -1)
    cv2.ellipse(img, (cx, cy + fh // 4), (fw // 6, fh // 20), 0, 0, 360, (60, 60, 150), -1)
    return img


def draw_shapes(img: np.ndarray, i: int) -> np.ndarray:
    """Draw moving non-face shapes (a box, a triangle, a bar) in place, so a no-face video is not blank.

    Checked against the same cascade: no detection in any frame at 320x240 to 1280x720, even with
    minNeighbors=1 (a disc in place of the triangle gave false positives).
    """
    h, w = img.shape[:2]
    x = int((0.15 + 0.1 * np.sin(i / 6)) * w)
    cv2.rectangle(img, (x, h // 5), (x + w // 4, h // 5 + h // 8), (200, 60, 40), -1)
    tri = np.array([[w - x, h // 3], [w - x - w // 6, 3 * h // 4], [w - x + w // 6, 3 * h // 4]], np.int32)
    cv2.fillPoly(img, [tri], (40, 200, 230))
    cv2.line(img, (0, h - h // 10), (w, h - h // 10 - (i % 20)), (20, 20, 20), max(2, h // 60))
    return img


def video_frame(
    i: int, size: tuple[int, int], *, face: bool, noise_amp: int = 0, seed: int = 0
) -> np.ndarray:
    """Frame ``i`` (BGR uint8, ``size`` = (width, height)): a slowly drifting face or moving shapes.

    ``noise_amp`` > 0 adds fresh uniform noise in ``[-noise_amp, noise_amp]`` to every pixel of every frame,
    which keeps the encoder from compressing the clip to nothing.
    """
    w, h = size
    img: np.ndarray = np.empty((h, w, 3), np.uint8)
    img[:] = BACKGROUND_BGR
    if face:
        center = (w // 2 + int(0.05 * w * np.sin(i / 5)), h // 2 + int(0.02 * h * np.cos(i / 7)))
        draw_face(img, center, int(0.45 * h))
        img = cv2.GaussianBlur(img, (0, 0), max(0.5, h / 200))
    else:
        draw_shapes(img, i)
    if noise_amp:
        rng = np.random.default_rng((seed, i))
        jitter = rng.integers(-noise_amp, noise_amp + 1, img.shape, dtype=np.int16)
        img = np.clip(img.astype(np.int16) + jitter, 0, 255).astype(np.uint8)
    return img


# --------------------------------------------------------------------------- video files


def write_video(
    path: PathLike,
    *,
    seconds: float = 1.0,
    fps: float | Fraction = 25,
    size: tuple[int, int] = (320, 240),
    face: bool = True,
    audio: bool = True,
    video: bool = True,
    audio_freq: float = 440.0,
    audio_rate: int = 48000,
    audio_channels: int = 1,
    codec: str | None = None,
    crf: int | None = None,
    bitrate: int | None = None,
    preset: str = "veryfast",
    noise_amp: int = 0,
) -> Path:
    """Write a short video with PyAV; the suffix picks the container.

    ``.mp4``/``.m4v``/``.mov``/``.mkv``: H.264 (libx264, else mpeg4) + AAC; ``.webm``: VP9 + Opus;
    ``.avi``: MPEG-4 part 2 + MP3. ``codec`` overrides the video codec ("h264", "mpeg4", "vp8", "vp9").
    ``face=True`` draws a face the Haar cascade detects; ``audio`` adds a sine track at ``audio_rate``;
    ``video=False`` gives an audio-only file. ``size`` is (width, height), both even. ``fps`` may be a
    Fraction (``Fraction(30000, 1001)`` for NTSC); floats are rounded to a denominator of at most 1001.
    """
    path = Path(path)
    container, default_codec, audio_codec = _container_for(path)
    rate = 48000 if audio_codec == "libopus" else audio_rate  # Opus: 48 kHz, see module notes
    y = sine(audio_freq, seconds, rate, audio_channels, amp=0.3) if audio else None
    if not video:
        if y is None:
            raise ValueError("a file needs at least one stream: video=False requires audio=True")
        return _write_pyav_audio(path, container, audio_codec, y, rate)
    fps_q = Fraction(fps).limit_denominator(1001)
    frames = (video_frame(i, size, face=face, noise_amp=noise_amp) for i in range(round(seconds * fps_q)))
    with av.open(str(path), "w", format=container) as out:
        vstream = _add_video_stream(out, codec or default_codec, fps_q, size, crf, bitrate, preset)
        if y is None:
            _mux_video(out, vstream, frames)
        else:
            astream = out.add_stream(audio_codec, rate=rate, layout=_layout(y))
            _mux_interleaved(out, vstream, frames, astream, y, rate / fps_q)
    return path


def write_720p_clip(
    path: PathLike, *, seconds: float = 3.7, bitrate: int = 11_000_000, fps: float = 30, noise_amp: int = 4
) -> Path:
    """A RAVDESS-like benchmark clip: 1280x720 H.264 at about ``bitrate`` + stereo 48 kHz AAC, with a face.

    Fresh per-frame noise (``noise_amp``) keeps the picture from compressing below the target: with the
    defaults the video stream measures about 11.2 Mb/s and the whole file about 11.3 Mb/s.
    """
    return write_video(
        path,
        seconds=seconds,
        fps=fps,
        size=(1280, 720),
        face=True,
        audio=True,
        audio_channels=2,
        codec="h264",
        bitrate=bitrate,
        noise_amp=noise_amp,
    )


def _container_for(path: Path) -> tuple[str, str, str]:
    """(container format, default video codec, audio codec) for a video file name."""
    suffix = path.suffix.lower()
    if suffix not in _VIDEO_CONTAINERS:
        raise ValueError(f"unsupported video suffix {suffix!r}: use one of {sorted(_VIDEO_CONTAINERS)}")
    return _VIDEO_CONTAINERS[suffix]


def _encoder_name(codec: str) -> str:
    """FFmpeg encoder for ``codec``; H.264 falls back to mpeg4 when libx264 is missing."""
    name = _VIDEO_CODEC_ALIASES.get(codec, codec)
    try:
        av.codec.Codec(name, "w")
    except Exception:
        if codec not in ("h264", "libx264"):
            raise
        name = "mpeg4"
    return name


def _add_video_stream(
    out: av.container.OutputContainer,
    codec: str,
    fps: Fraction,
    size: tuple[int, int],
    crf: int | None,
    bitrate: int | None,
    preset: str,
) -> av.VideoStream:
    """Add a yuv420p video stream; ``preset`` applies to libx264 only."""
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {size}")
    name = _encoder_name(codec)
    stream = cast(av.VideoStream, out.add_stream(name, rate=fps))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    options: dict[str, object] = {"preset": preset} if name == "libx264" else {}
    if crf is not None:
        options["crf"] = str(crf)
    if bitrate is not None:
        stream.bit_rate = bitrate
    stream.options = options
    return stream


def _encode(out: av.container.OutputContainer, stream, frame: av.frame.Frame | None) -> None:
    """Encode one frame (None flushes) and mux the packets."""
    for packet in stream.encode(frame):
        out.mux(packet)


def _video_frame(img: np.ndarray, pts: int) -> av.VideoFrame:
    """A PyAV frame from a BGR image, stamped ``pts`` (in frames)."""
    frame = av.VideoFrame.from_ndarray(img, format="bgr24")
    frame.pts = pts
    return frame


def _mux_video(out: av.container.OutputContainer, stream, frames: Iterator[np.ndarray]) -> None:
    """Encode all frames of a video-only file."""
    for i, img in enumerate(frames):
        _encode(out, stream, _video_frame(img, i))
    _encode(out, stream, None)


def _mux_interleaved(
    out: av.container.OutputContainer,
    vstream,
    frames: Iterator[np.ndarray],
    astream,
    y: np.ndarray,
    spf: Fraction,
) -> None:
    """Encode video frame i together with its audio samples [i*spf, (i+1)*spf), then the leftover audio."""
    done = 0
    for i, img in enumerate(frames):
        _encode(out, vstream, _video_frame(img, i))
        end = min(len(y), int((i + 1) * spf))
        if end > done:
            _encode(out, astream, _audio_frame(y[done:end], astream.rate, done))
            done = end
    _encode(out, vstream, None)
    if done < len(y):
        _encode(out, astream, _audio_frame(y[done:], astream.rate, done))
    _encode(out, astream, None)


# --------------------------------------------------------------------------- names


def ravdess_name(
    modality: int = 3,
    channel: int = 1,
    emotion: int = 1,
    intensity: int = 1,
    statement: int = 1,
    repetition: int = 1,
    actor: int = 1,
    ext: str = ".wav",
) -> str:
    """A RAVDESS file name such as ``03-01-06-01-02-01-12.wav``.

    Fields: modality (01 full-AV, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song),
    emotion (01 neutral .. 08 surprised), intensity (01 normal, 02 strong), statement (01, 02),
    repetition (01, 02), actor (01–24; odd male, even female). Only 0–99 is enforced, so out-of-range
    names can be made for negative tests.
    """
    fields = (modality, channel, emotion, intensity, statement, repetition, actor)
    if any(not 0 <= f <= 99 for f in fields):
        raise ValueError(f"RAVDESS fields are two-digit numbers, got {fields}")
    return "-".join(f"{f:02d}" for f in fields) + ext


# --------------------------------------------------------------------------- bad inputs


def truncated_wav(data: bytes, keep: float = 0.5) -> bytes:
    """``data`` cut after its header plus ``keep`` of the rest; the header still claims the full size."""
    start = _data_chunk_offset(data) + 8
    return data[: start + int((len(data) - start) * keep)]


def wav_with_lying_header(seconds: float = 1.0, sr: int = 16000, claimed_factor: int = 10) -> bytes:
    """A valid-looking WAV whose RIFF and ``data`` chunk sizes claim ``claimed_factor`` times the samples."""
    data = bytearray(sine_wav_bytes(seconds=seconds, sr=sr))
    offset = _data_chunk_offset(bytes(data))
    (size,) = struct.unpack_from("<I", data, offset + 4)
    struct.pack_into("<I", data, offset + 4, size * claimed_factor)
    struct.pack_into("<I", data, 4, len(data) - 8 + size * (claimed_factor - 1))
    return bytes(data)


def float_wav_with_nan_inf(seconds: float = 1.0, sr: int = 16000) -> bytes:
    """A 32-bit float WAV whose samples include NaN, +inf and -inf (every 1000th sample, cycling)."""
    y = sine(seconds=seconds, sr=sr)
    y[::3000] = np.nan
    y[1000::3000] = np.inf
    y[2000::3000] = -np.inf
    return wav_bytes(y, sr, "FLOAT")


def mulaw_8k_wav(seconds: float = 1.0, freq: float = 440.0) -> bytes:
    """A telephone-style WAV: 8 kHz mono mu-law."""
    return wav_bytes(sine(freq, seconds, 8000), 8000, "ULAW")


def multichannel_wav(channels: int = 6, seconds: float = 1.0, sr: int = 48000) -> bytes:
    """A PCM_16 WAV with ``channels`` channels, each a sine at a different pitch."""
    tones = [sine(220.0 * (k + 1), seconds, sr, amp=0.5 / channels) for k in range(channels)]
    return wav_bytes(np.stack(tones, axis=1), sr)


def hires_wav(sr: int = 96000, subtype: str = "PCM_24", seconds: float = 1.0) -> bytes:
    """A high-resolution WAV (96 kHz, 24-bit by default)."""
    return wav_bytes(sine(seconds=seconds, sr=sr), sr, subtype)


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    """``n`` reproducible random bytes (garbage input)."""
    return np.random.default_rng(seed).bytes(n)


def _data_chunk_offset(data: bytes) -> int:
    """Offset of the ``data`` chunk id in a RIFF/WAVE file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"data":
            return pos
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")
