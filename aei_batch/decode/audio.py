"""Any supported container -> mono float32 at one analysis rate.

The analysis rate is 22,050 Hz: the seed study's features were computed by librosa at that rate, and
every feature set in aei_batch is defined on it, so training and scoring always see the same signal.
Backends are tried in order (soundfile for WAV/FLAC/OGG, then PyAV's bundled FFmpeg for everything,
including the audio track of mp4/mov/webm); when all fail, one error lists what each said.
Channels are averaged to mono; resampling uses soxr HQ (librosa's default).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

from aei_batch.errors import ErrorCode, FileError

ANALYSIS_SR = 22_050
MIN_DURATION_S = 0.25  # below this there are too few frames for stable statistics
SILENCE_PEAK = 1e-4  # -80 dBFS: below one step of 16-bit PCM (3e-5) x 3; nothing audible to score
_ADDRESS = re.compile(r" object at 0x[0-9a-fA-F]+")
_SOUNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio: mono float32 samples at `sr`, plus facts about the source."""

    y: np.ndarray
    sr: int
    source_sr: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return len(self.y) / float(self.sr)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot >= 0 else ""


def _decode_soundfile(data: bytes, max_duration_s: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as f:
        if max_duration_s is not None and f.frames > (max_duration_s + 1) * f.samplerate:
            raise FileError(ErrorCode.TOO_LONG, _too_long_msg(f.frames / f.samplerate, max_duration_s))
        y = f.read(dtype="float32", always_2d=True)
        return y.T, int(f.samplerate)


def _too_long_msg(seconds: float, limit: float) -> str:
    return f"audio lasts at least {seconds:.0f} s, over the limit of {limit:.0f} s (--max-duration-s)"


def _decode_pyav(data: bytes, max_duration_s: float | None) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            kind = "video-only container" if container.streams.video else "container"
            raise FileError(ErrorCode.NO_AUDIO_STREAM, f"{kind} has no audio track")
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        total = 0
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        resampler = av.AudioResampler(format="fltp")  # planar float, native rate and layout
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                arr = out.to_ndarray()
                chunks.append(arr)
                total += arr.shape[1]
            if max_duration_s is not None and sr and total > (max_duration_s + 1) * sr:
                raise FileError(ErrorCode.TOO_LONG, _too_long_msg(total / sr, max_duration_s))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks or sr <= 0:
        raise FileError(ErrorCode.DECODE_FAILED, "the audio track decoded to no samples")
    channels = min(c.shape[0] for c in chunks)
    return np.concatenate([c[:channels] for c in chunks], axis=1), sr


def watchdog_warm_up() -> None:
    """Import the lazily imported codecs and resampler and decode a tiny clip once (the watchdog
    calls this in a new decoder process, so the first file's decode timeout measures decoding only)."""
    import av  # noqa: F401 - imported for its start-up cost
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(8000, dtype=np.float32) / 10) * 0.1, 16000, format="WAV", subtype="PCM_16")
    decode_audio(buf.getvalue(), "warm.wav")


def to_mono_resampled(y: np.ndarray, sr: int, target_sr: int = ANALYSIS_SR) -> np.ndarray:
    """(channels, n) or (n,) float array at `sr` -> mono float32 at `target_sr`."""
    import soxr

    mono = y.mean(axis=0) if y.ndim == 2 else y
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sr != target_sr:
        mono = soxr.resample(mono, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
    return mono


def decode_audio(
    data: bytes,
    name: str,
    *,
    sr: int = ANALYSIS_SR,
    max_duration_s: float | None = None,
    min_duration_s: float = MIN_DURATION_S,
) -> AudioClip:
    """Decode `data` (the bytes of file `name`) to an AudioClip, or raise FileError with a stable code."""
    if not data:
        raise FileError(ErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    attempts: list[str] = []
    backends = [("soundfile", _decode_soundfile)] if _suffix(name) in _SOUNDFILE_SUFFIXES else []
    backends.append(("pyav", _decode_pyav))
    raw: np.ndarray | None = None
    src_sr = 0
    for backend_name, backend in backends:
        try:
            raw, src_sr = backend(data, max_duration_s)
            break
        except FileError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend failure is recorded, then reported
            detail = _ADDRESS.sub("", str(exc))[:160]  # object reprs carry memory addresses: unstable
            attempts.append(f"{backend_name}: {type(exc).__name__}: {detail}")
    if raw is None:
        raise FileError(ErrorCode.DECODE_FAILED, "cannot decode audio; " + "; ".join(attempts))
    if raw.size == 0:
        raise FileError(ErrorCode.TOO_SHORT, "the audio stream holds no samples")
    if not np.isfinite(raw).all():
        bad = int((~np.isfinite(raw)).sum())
        raise FileError(ErrorCode.INVALID_AUDIO, f"{bad} samples are NaN or infinite")
    peak = float(np.abs(raw).max())
    if peak < SILENCE_PEAK:  # an emotion read from digital silence would be noise presented as a result
        raise FileError(ErrorCode.SILENT, f"the audio is silent (peak {peak:.1e}, limit {SILENCE_PEAK:.0e})")
    y = to_mono_resampled(raw, src_sr, sr)
    clip = AudioClip(y=y, sr=sr, source_sr=src_sr, source_channels=int(raw.shape[0]))
    if clip.duration_s < min_duration_s:
        raise FileError(
            ErrorCode.TOO_SHORT,
            f"audio lasts {clip.duration_s:.3f} s, under the minimum of {min_duration_s} s",
        )
    if max_duration_s is not None and clip.duration_s > max_duration_s:
        raise FileError(ErrorCode.TOO_LONG, _too_long_msg(clip.duration_s, max_duration_s))
    return clip
