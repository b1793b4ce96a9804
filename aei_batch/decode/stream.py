"""Chunked decode for long recordings: memory bounded by the chunk, not by the file.

`decode_audio` materialises a whole file (bytes, raw samples, resampled samples). For an hour-long
call that is hundreds of megabytes per worker. `iter_audio_chunks` instead reads fixed blocks
(soundfile block reads for WAV/FLAC/OGG, PyAV packet decode for everything else), resamples them
with soxr's streaming resampler (`soxr.ResampleStream`, the same HQ filter `decode_audio` uses, with
its state carried across chunks so there is no seam) and yields `(channels, n)` float32 arrays at
the analysis rate. The source is a local path (read by path: the bytes never sit in memory) or the
bytes of a small file. This module knows nothing of storage: `aei_batch.io.storage.open_source` turns a
uri into such a path (spooling remote objects to a temporary file in bounded blocks).

Per-file problems raise `FileError` with the same stable codes as `decode_audio`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from aei_batch.decode.audio import _SOUNDFILE_SUFFIXES, ANALYSIS_SR, _suffix, _too_long_msg
from aei_batch.errors import ErrorCode, FileError

Source = str | bytes  # a local path, or the bytes of a (small) file
DEFAULT_CHUNK_S = 20.0


@dataclass(frozen=True)
class StreamFacts:
    """What a probe learns from a file's headers, without decoding it."""

    source_sr: int
    channels: int
    duration_s: float | None  # None when the container does not say


def _file_arg(src: Source) -> str | io.BytesIO:
    return io.BytesIO(src) if isinstance(src, bytes) else src


def probe(src: Source, name: str) -> StreamFacts | None:
    """Header facts (rate, channels, duration) or None when neither backend can tell cheaply."""
    if _suffix(name) in _SOUNDFILE_SUFFIXES:
        with contextlib.suppress(Exception):
            import soundfile as sf

            info = sf.info(_file_arg(src))
            return StreamFacts(int(info.samplerate), int(info.channels), info.frames / float(info.samplerate))
    with contextlib.suppress(Exception):
        import av

        with av.open(_file_arg(src), mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000.0
            return StreamFacts(
                int(stream.codec_context.sample_rate or stream.rate or 0),
                int(stream.codec_context.channels or 1),
                duration,
            )
    return None


def _blocks_soundfile(src: Source, block: float) -> Iterator[tuple[np.ndarray, int]]:
    """(channels, n) float32 blocks of `block` seconds at the source rate."""
    import soundfile as sf

    with sf.SoundFile(_file_arg(src)) as f:
        frames = max(1, int(block * f.samplerate))
        while True:
            y = f.read(frames, dtype="float32", always_2d=True)
            if y.shape[0] == 0:
                return
            yield y.T, int(f.samplerate)


def _blocks_pyav(src: Source, block: float) -> Iterator[tuple[np.ndarray, int]]:
    import av

    with av.open(_file_arg(src), mode="r") as container:
        if not container.streams.audio:
            kind = "video-only container" if container.streams.video else "container"
            raise FileError(ErrorCode.NO_AUDIO_STREAM, f"{kind} has no audio track")
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate or stream.rate or 0)
        if sr <= 0:
            raise FileError(ErrorCode.DECODE_FAILED, "the audio track has no sample rate")
        resampler = av.AudioResampler(format="fltp")  # planar float, native rate and layout
        pending: list[np.ndarray] = []
        held = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                arr = out.to_ndarray()
                pending.append(arr)
                held += arr.shape[1]
            if held >= block * sr:
                yield _join(pending), sr
                pending, held = [], 0
        for out in resampler.resample(None):
            pending.append(out.to_ndarray())
        if pending:
            yield _join(pending), sr


def _join(parts: list[np.ndarray]) -> np.ndarray:
    channels = min(p.shape[0] for p in parts)
    return np.concatenate([p[:channels] for p in parts], axis=1).astype(np.float32, copy=False)


def _source_blocks(src: Source, name: str, block: float) -> Iterator[tuple[np.ndarray, int]]:
    """Try soundfile (when the suffix suits it), then PyAV; a failure before any block falls through."""
    attempts: list[str] = []
    backends = [("soundfile", _blocks_soundfile)] if _suffix(name) in _SOUNDFILE_SUFFIXES else []
    backends.append(("pyav", _blocks_pyav))
    for backend_name, backend in backends:
        started = False
        try:
            for item in backend(src, block):
                started = True
                yield item
            return
        except FileError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend failure is recorded, then reported
            if started:  # a stream that breaks half way is a decode failure, not a reason to restart
                raise FileError(
                    ErrorCode.DECODE_FAILED, f"{backend_name}: {type(exc).__name__}: {exc}"
                ) from None
            attempts.append(f"{backend_name}: {type(exc).__name__}: {str(exc)[:160]}")
    raise FileError(ErrorCode.DECODE_FAILED, "cannot decode audio; " + "; ".join(attempts))


def iter_audio_chunks(
    src: Source,
    name: str,
    *,
    chunk_s: float = DEFAULT_CHUNK_S,
    sr: int = ANALYSIS_SR,
    per_channel: bool = False,
    max_duration_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield `(channels, n)` float32 chunks of about `chunk_s` seconds at `sr`.

    Channels are averaged to one unless `per_channel` (then every source channel is kept). Raises
    FileError: EMPTY_FILE, DECODE_FAILED, NO_AUDIO_STREAM, INVALID_AUDIO (NaN/Inf), TOO_LONG,
    TOO_SHORT (no samples at all).
    """
    import soxr

    if isinstance(src, bytes) and not src:
        raise FileError(ErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    if not isinstance(src, bytes):
        try:
            size = os.path.getsize(src)
        except OSError as exc:
            raise FileError(
                ErrorCode.READ_FAILED, f"cannot read the file: {type(exc).__name__}: {exc}"
            ) from None
        if size == 0:
            raise FileError(ErrorCode.EMPTY_FILE, "the file is empty (0 bytes)")
    rs: soxr.ResampleStream | None = None
    src_sr, n_channels, seen = 0, 0, 0
    for raw, block_sr in _source_blocks(src, name, chunk_s):
        if rs is None:
            src_sr, n_channels = block_sr, raw.shape[0] if per_channel else 1
            rs = soxr.ResampleStream(src_sr, sr, n_channels, dtype="float32", quality="HQ")
        if not np.isfinite(raw).all():
            raise FileError(
                ErrorCode.INVALID_AUDIO, f"{int((~np.isfinite(raw)).sum())} samples are NaN or infinite"
            )
        seen += raw.shape[1]
        if max_duration_s is not None and seen > max_duration_s * src_sr:
            raise FileError(ErrorCode.TOO_LONG, _too_long_msg(seen / src_sr, max_duration_s))
        x = raw[:n_channels] if per_channel else raw.mean(axis=0, keepdims=True)
        out = rs.resample_chunk(np.ascontiguousarray(x.T), last=False)
        if out.shape[0]:
            yield np.ascontiguousarray(out.T)
    if rs is None or seen == 0:
        raise FileError(ErrorCode.TOO_SHORT, "the audio stream holds no samples")
    tail = rs.resample_chunk(np.zeros((0, n_channels), dtype=np.float32), last=True)
    if tail.shape[0]:
        yield np.ascontiguousarray(tail.T)
