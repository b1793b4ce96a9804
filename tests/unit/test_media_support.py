"""The test-media generators (tests/support/media.py) make what they promise, checked by decoding back."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from tests.support import media

# AAC and MP3-in-AVI decode up to this many extra samples; FFmpeg decodes libsndfile's Ogg Vorbis up to
# a block short or long (e.g. 57,472 of 57,600), though soundfile reads it back exactly.
LOSSY_PADDING = 2048


def decode_audio(source: Path | bytes) -> tuple[int, int, int, str]:
    """(samples per channel, channels, rate, codec) of the first audio stream, decoded with PyAV."""
    src = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(src, "r") as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
    return (
        sum(f.samples for f in frames),
        len(frames[0].layout.channels),
        frames[0].sample_rate,
        stream.codec_context.name,
    )


def face_hit_rate(path: Path, step: int = 1) -> float:
    """Share of decoded frames (every ``step``-th) in which the Haar frontal-face cascade finds a face."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    hits = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                gray = cv2.cvtColor(frame.to_ndarray(format="bgr24"), cv2.COLOR_BGR2GRAY)
                hits.append(len(cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)) > 0)
    return float(np.mean(hits))


def stream_summary(path: Path) -> dict[str, str]:
    """{stream type: codec name} of a media file."""
    with av.open(str(path)) as container:
        return {s.type: s.codec_context.name for s in container.streams}


def video_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (48000, 2)])
def test_sine_wav_bytes_decodes_exactly(subtype: str, sr: int, channels: int) -> None:
    data = media.sine_wav_bytes(seconds=0.5, sr=sr, channels=channels, subtype=subtype)

    assert decode_audio(data)[:3] == (sr // 2, channels, sr)
    assert sf.info(io.BytesIO(data)).subtype == subtype


def test_noise_wav_bytes_is_seeded() -> None:
    assert media.noise_wav_bytes(seed=1) == media.noise_wav_bytes(seed=1)
    assert media.noise_wav_bytes(seed=1) != media.noise_wav_bytes(seed=2)
    y, sr = sf.read(io.BytesIO(media.noise_wav_bytes(seconds=0.25, sr=8000)))
    assert (len(y), sr) == (2000, 8000) and 0.1 < np.std(y) < 0.3


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [
        (".wav", "pcm_s16le"),
        (".flac", "flac"),
        (".ogg", "vorbis"),
        (".mp3", "mp3float"),
        (".m4a", "aac"),
        (".mp4", "aac"),
    ],
)
@pytest.mark.parametrize(("sr", "channels"), [(16000, 1), (44100, 2), (48000, 1)])
def test_write_audio_round_trips(tmp_path: Path, suffix: str, codec: str, sr: int, channels: int) -> None:
    n = int(sr * 1.2)
    path = media.write_audio(tmp_path / f"a{suffix}", media.sine(seconds=1.2, sr=sr, channels=channels), sr)

    samples, got_channels, rate, got_codec = decode_audio(path)

    assert (got_channels, rate, got_codec) == (channels, sr, codec)
    assert abs(samples - n) <= LOSSY_PADDING
    if suffix == ".ogg":
        assert sf.info(path).frames == n
    else:
        assert samples >= n
    if suffix in (".wav", ".flac", ".mp3"):  # lossless, or LAME's gapless header
        assert samples == n


def test_write_audio_rejects_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported audio suffix"):
        media.write_audio(tmp_path / "a.xyz", media.sine(), 16000)


def test_audio_only_mp4_has_one_aac_stream(tmp_path: Path) -> None:
    path = media.write_audio_only_mp4(tmp_path / "a.mp4", seconds=2.0, channels=2)

    assert stream_summary(path) == {"audio": "aac"}
    samples, channels, rate, _ = decode_audio(path)
    assert (channels, rate) == (2, 48000) and 96000 <= samples <= 96000 + LOSSY_PADDING


# --------------------------------------------------------------------------- video


@pytest.mark.parametrize(
    ("name", "kwargs", "streams"),
    [
        ("v.mp4", {}, {"video": "h264", "audio": "aac"}),
        ("v.mov", {}, {"video": "h264", "audio": "aac"}),
        ("v.mkv", {}, {"video": "h264", "audio": "aac"}),
        ("v.webm", {}, {"video": "vp9", "audio": "opus"}),
        ("v8.webm", {"codec": "vp8"}, {"video": "vp8", "audio": "opus"}),
        ("v.avi", {}, {"video": "mpeg4", "audio": "mp3float"}),
        ("m4v.mp4", {"codec": "mpeg4"}, {"video": "mpeg4", "audio": "aac"}),
        ("silent.mp4", {"audio": False}, {"video": "h264"}),
        ("stereo.mp4", {"audio_channels": 2, "fps": 30}, {"video": "h264", "audio": "aac"}),
        ("audio_only.mp4", {"video": False}, {"audio": "aac"}),
    ],
)
def test_write_video_streams_and_lengths(tmp_path: Path, name: str, kwargs: dict, streams: dict) -> None:
    path = media.write_video(tmp_path / name, seconds=1.0, **kwargs)

    assert stream_summary(path) == streams
    if "video" in streams:
        assert video_frame_count(path) == round(1.0 * kwargs.get("fps", 25))
    if "audio" in streams:
        samples, channels, rate, _ = decode_audio(path)
        assert (channels, rate) == (kwargs.get("audio_channels", 1), 48000)
        assert 48000 <= samples <= 48000 + LOSSY_PADDING


@pytest.mark.parametrize("name", ["face.mp4", "face.webm", "face.avi"])
def test_face_video_is_detected_by_haar_cascade(tmp_path: Path, name: str) -> None:
    path = media.write_video(tmp_path / name, seconds=2.0, face=True, audio=False)

    assert face_hit_rate(path) >= 0.9


@pytest.mark.parametrize("size", [(320, 240), (640, 480)])
def test_no_face_video_is_not_detected(tmp_path: Path, size: tuple[int, int]) -> None:
    path = media.write_video(tmp_path / "noface.mp4", seconds=2.0, size=size, face=False, audio=False)

    assert face_hit_rate(path) <= 0.1


def test_write_video_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        media.write_video(tmp_path / "odd.mp4", size=(321, 240))


@pytest.mark.slow
def test_720p_clip_is_ravdess_like(tmp_path: Path) -> None:
    path = media.write_720p_clip(tmp_path / "clip.mp4")

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 1280, 720)
        assert (audio.codec_context.name, audio.rate, audio.channels) == ("aac", 48000, 2)
        assert container.duration is not None
        megabits_per_s = path.stat().st_size * 8 / (container.duration / 1e6) / 1e6
    assert 10.0 <= megabits_per_s <= 12.5
    assert video_frame_count(path) == 111
    assert face_hit_rate(path, step=10) >= 0.9


# --------------------------------------------------------------------------- names and bad inputs


def test_ravdess_name() -> None:
    assert media.ravdess_name() == "03-01-01-01-01-01-01.wav"
    assert media.ravdess_name(1, 1, 6, 1, 2, 1, 12, ext=".mp4") == "01-01-06-01-02-01-12.mp4"
    with pytest.raises(ValueError):
        media.ravdess_name(actor=100)


def _data_size_field(data: bytes) -> int:
    offset = data.index(b"data")
    return struct.unpack_from("<I", data, offset + 4)[0]


def test_truncated_wav_keeps_header_and_loses_samples() -> None:
    full = media.sine_wav_bytes(seconds=1.0, sr=16000)

    cut = media.truncated_wav(full, keep=0.25)

    assert cut[:44] == full[:44] and len(cut) < len(full) / 2
    assert _data_size_field(cut) == 32000  # the header still claims one second


def test_wav_with_lying_header_claims_more_than_it_has() -> None:
    data = media.wav_with_lying_header(seconds=0.5, sr=16000, claimed_factor=10)

    assert _data_size_field(data) == 10 * 16000
    assert len(data) == 44 + 16000
    assert struct.unpack_from("<I", data, 4)[0] > len(data)


def test_float_wav_contains_nan_and_inf() -> None:
    y, sr = sf.read(io.BytesIO(media.float_wav_with_nan_inf(seconds=1.0, sr=16000)))

    assert sr == 16000 and np.isnan(y).any() and np.isposinf(y).any() and np.isneginf(y).any()


@pytest.mark.parametrize(
    ("data", "rate", "channels", "subtype"),
    [
        (media.mulaw_8k_wav(), 8000, 1, "ULAW"),
        (media.multichannel_wav(channels=6), 48000, 6, "PCM_16"),
        (media.hires_wav(), 96000, 1, "PCM_24"),
    ],
)
def test_unusual_wavs(data: bytes, rate: int, channels: int, subtype: str) -> None:
    info = sf.info(io.BytesIO(data))

    assert (info.samplerate, info.channels, info.subtype, info.frames) == (rate, channels, subtype, rate)


def test_random_bytes_are_seeded_garbage() -> None:
    assert len(media.random_bytes(1000, seed=3)) == 1000
    assert media.random_bytes(64, seed=3) == media.random_bytes(64, seed=3)
    assert media.random_bytes(64, seed=3) != media.random_bytes(64, seed=4)
    assert not media.random_bytes(64).startswith(b"RIFF")
