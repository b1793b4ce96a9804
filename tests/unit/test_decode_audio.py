"""Decoding: every container to mono float32 at 22,050 Hz, with stable error codes."""

import numpy as np
import pytest

from aei_batch.decode.audio import ANALYSIS_SR, decode_audio
from aei_batch.errors import ErrorCode, FileError
from tests.support import media


def _dominant_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()])


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4"])
def test_containers_decode_to_analysis_rate(tmp_path, suffix):
    path = media.write_audio(tmp_path / f"tone{suffix}", media.sine(440.0, 1.0, 48000), 48000)
    clip = decode_audio(path.read_bytes(), path.name)
    assert clip.sr == ANALYSIS_SR and clip.y.dtype == np.float32 and clip.y.ndim == 1
    assert 0.95 <= clip.duration_s <= 1.15  # lossy codecs pad a few hundred samples
    assert abs(_dominant_hz(clip.y, clip.sr) - 440.0) < 5.0
    assert clip.source_sr == 48000


def test_stereo_is_averaged_to_mono(tmp_path):
    left = media.sine(300.0, 1.0, 16000)
    stereo = np.stack([left, -left], axis=1)  # opposite phases cancel when averaged
    clip = decode_audio(media.wav_bytes(stereo, 16000), "s.wav")
    assert clip.source_channels == 2
    assert np.abs(clip.y).max() < 1e-3


def test_audio_track_of_a_video(tmp_path):
    path = media.write_video(tmp_path / "av.mp4", seconds=1.0, face=False, audio=True)
    clip = decode_audio(path.read_bytes(), path.name)
    assert 0.9 <= clip.duration_s <= 1.2


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_FILE),
        (media.random_bytes(4096), ErrorCode.DECODE_FAILED),
        (media.sine_wav_bytes(seconds=0.05), ErrorCode.TOO_SHORT),
        (media.float_wav_with_nan_inf(), ErrorCode.INVALID_AUDIO),
    ],
    ids=["empty", "random", "short", "nan"],
)
def test_bad_audio_raises_a_stable_code(data, code):
    with pytest.raises(FileError) as err:
        decode_audio(data, "bad.wav")
    assert err.value.code == code and err.value.message


def test_duration_limit():
    with pytest.raises(FileError) as err:
        decode_audio(media.sine_wav_bytes(seconds=3.0), "long.wav", max_duration_s=1.0)
    assert err.value.code == ErrorCode.TOO_LONG


def test_video_without_audio_track(tmp_path):
    path = media.write_video(tmp_path / "silent.mp4", seconds=0.5, face=False, audio=False)
    with pytest.raises(FileError) as err:
        decode_audio(path.read_bytes(), path.name)
    assert err.value.code == ErrorCode.NO_AUDIO_STREAM
