"""Video containers (mp4, mov, m4v, mkv, webm, avi) -> sampled grayscale frames, from bytes in memory.

Sampling follows the seed study: every N-th decoded frame (default 20), or a fixed rate (`fps`) when
given. Every packet of the video stream must be decoded (inter-frame codecs need the reference
frames), but only kept frames are converted: `frame.to_ndarray(format="gray")` is called on them and
on nothing else, so dropped frames cost the decoder and no colour conversion. The audio track of the
same file goes through `aei_batch.decode.audio.decode_audio`, which opens the container on its own.

Decoding uses PyAV (its wheel bundles FFmpeg); no ffmpeg binary is needed. The decoder runs with
one thread by default: a worker is one core (Ray actors ask for one CPU), and extra decoder threads
only fight the other workers for the same cores.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from aei_batch.errors import ErrorCode, FileError

DEFAULT_EVERY_N = 20


@dataclass(frozen=True)
class Sampling:
    """Which frames to keep: every `every_n`-th frame, or `fps` frames per second when `fps` is set."""

    every_n: int = DEFAULT_EVERY_N
    fps: float | None = None
    max_frames: int | None = 600

    def __post_init__(self) -> None:
        if self.every_n < 1:
            raise ValueError(f"every_n must be at least 1, got {self.every_n}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    def as_dict(self) -> dict[str, float | int | None]:
        return {"every_n": self.every_n, "fps": self.fps, "max_frames": self.max_frames}


@dataclass
class VideoClip:
    """Sampled frames of a video stream: grayscale uint8 arrays (height, width) with their positions."""

    frames: list[np.ndarray]
    indices: list[int]  # decode order index of each kept frame
    times_s: list[float]  # presentation time of each kept frame
    width: int
    height: int
    frames_decoded: int
    duration_s: float
    codec: str = ""
    meta: dict[str, str] = field(default_factory=dict)


def _keep(i: int, t: float, next_t: float, sampling: Sampling) -> bool:
    if sampling.fps is None:
        return i % sampling.every_n == 0
    return t + 1e-9 >= next_t


def _frame_time(frame: object, stream: object, i: int, rate: float) -> float:
    pts = getattr(frame, "pts", None)
    tb = getattr(stream, "time_base", None)
    if pts is not None and tb is not None:
        return float(pts * tb)
    return i / rate if rate else 0.0


def decode_video(
    data: bytes,
    name: str,
    sampling: Sampling | None = None,
    *,
    max_duration_s: float | None = None,
    threads: int = 1,
) -> VideoClip:
    """Decode the first video stream of `data` (the bytes of file `name`) keeping the sampled frames.

    Raises FileError: EMPTY_FILE, NO_VIDEO_STREAM (a container without video), DECODE_FAILED (the
    container or stream cannot be read, or no frame decodes), TOO_LONG (over `max_duration_s`).
    """
    import av

    sampling = sampling or Sampling()
    if not data:
        raise FileError(ErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    buf = io.BytesIO(data)
    try:
        container = av.open(buf, mode="r")
    except Exception as exc:  # noqa: BLE001 - any open failure is a per-file decode failure
        raise FileError(
            ErrorCode.DECODE_FAILED,
            f"cannot open {name!r} as a video container: {type(exc).__name__}: {str(exc)[:160]}",
        ) from None
    with container:
        if not container.streams.video:
            raise FileError(ErrorCode.NO_VIDEO_STREAM, "the container has no video track")
        stream = container.streams.video[0]
        stream.thread_count = max(0, threads)  # 0 = FFmpeg picks (one per core)
        if threads != 1:
            stream.thread_type = "AUTO"
        try:
            return _decode_stream(container, stream, sampling, max_duration_s)
        except FileError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise FileError(
                ErrorCode.DECODE_FAILED,
                f"video stream of {name!r} failed to decode: {type(exc).__name__}: {str(exc)[:160]}",
            ) from None


def _decode_stream(
    container: object, stream: object, sampling: Sampling, max_duration_s: float | None
) -> VideoClip:
    rate = float(getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None) or 0.0)
    frames: list[np.ndarray] = []
    indices: list[int] = []
    times: list[float] = []
    next_t = 0.0
    i = -1
    last_t = 0.0
    width = height = 0
    for i, frame in enumerate(container.decode(stream)):  # type: ignore[attr-defined]
        t = _frame_time(frame, stream, i, rate)
        last_t = t
        if max_duration_s is not None and t > max_duration_s:
            raise FileError(ErrorCode.TOO_LONG, f"video lasts over {max_duration_s:.0f} s (--max-duration-s)")
        if sampling.max_frames is not None and len(frames) >= sampling.max_frames:
            continue  # keep decoding to count frames and enforce the duration limit
        if _keep(i, t, next_t, sampling):
            frames.append(frame.to_ndarray(format="gray"))
            indices.append(i)
            times.append(t)
            width, height = frame.width, frame.height
            if sampling.fps is not None:
                next_t = t + 1.0 / sampling.fps
    if not frames:
        raise FileError(ErrorCode.DECODE_FAILED, "the video track decoded to no frames")
    duration = last_t + (1.0 / rate if rate else 0.0)
    codec = str(getattr(getattr(stream, "codec_context", None), "name", "") or "")
    return VideoClip(
        frames=frames,
        indices=indices,
        times_s=times,
        width=width,
        height=height,
        frames_decoded=i + 1,
        duration_s=duration,
        codec=codec,
    )


def has_video_stream(data: bytes) -> bool:
    """True when `data` opens as a container with a video stream (False when it cannot be opened)."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            return bool(container.streams.video)
    except Exception:  # noqa: BLE001
        return False
