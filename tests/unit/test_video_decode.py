"""Video decoding and face cropping on generated clips (real PyAV/FFmpeg, real OpenCV cascade)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aei_batch.decode.video import Sampling, decode_video, has_video_stream
from aei_batch.errors import ErrorCode, FileError
from aei_batch.features.faces import FACE_SPEC, FaceCropper, centre_box, expand_box
from tests.support.media import random_bytes, video_frame, write_audio_only_mp4, write_video


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper()


def test_every_nth_frame_from_bytes(tmp_path: Path) -> None:
    data = write_video(tmp_path / "a.mp4", seconds=2.0, fps=25, size=(320, 240)).read_bytes()
    clip = decode_video(data, "a.mp4", Sampling(every_n=20))
    assert clip.frames_decoded == 50
    assert clip.indices == [0, 20, 40]
    assert [f.shape for f in clip.frames] == [(240, 320)] * 3
    assert all(f.dtype == np.uint8 for f in clip.frames)
    assert clip.times_s == pytest.approx([0.0, 0.8, 1.6], abs=0.05)
    assert clip.duration_s == pytest.approx(2.0, abs=0.05)


def test_fixed_rate_sampling(tmp_path: Path) -> None:
    data = write_video(tmp_path / "b.mp4", seconds=2.0, fps=25, audio=False).read_bytes()
    clip = decode_video(data, "b.mp4", Sampling(fps=5))
    assert len(clip.frames) == 10
    assert np.diff(clip.times_s) == pytest.approx([0.2] * 9, abs=0.01)


@pytest.mark.parametrize("suffix", [".mov", ".webm", ".avi", ".mkv"])
def test_other_containers(tmp_path: Path, suffix: str) -> None:
    data = write_video(tmp_path / f"c{suffix}", seconds=1.0, fps=25).read_bytes()
    clip = decode_video(data, f"c{suffix}")
    assert clip.frames_decoded == 25 and len(clip.frames) == 2


def test_no_video_stream_and_corrupt(tmp_path: Path) -> None:
    audio_only = write_audio_only_mp4(tmp_path / "a.mp4").read_bytes()
    assert not has_video_stream(audio_only)
    with pytest.raises(FileError) as e1:
        decode_video(audio_only, "a.mp4")
    assert e1.value.code == ErrorCode.NO_VIDEO_STREAM
    with pytest.raises(FileError) as e2:
        decode_video(random_bytes(5000), "x.mp4")
    assert e2.value.code == ErrorCode.DECODE_FAILED
    good = write_video(tmp_path / "g.mp4", seconds=1.0).read_bytes()
    with pytest.raises(FileError) as e3:
        decode_video(good[: len(good) // 3], "cut.mp4")  # moov atom at the end: cannot be opened
    assert e3.value.code == ErrorCode.DECODE_FAILED
    with pytest.raises(FileError) as e4:
        decode_video(b"", "e.mp4")
    assert e4.value.code == ErrorCode.EMPTY_FILE


def test_max_duration(tmp_path: Path) -> None:
    data = write_video(tmp_path / "l.mp4", seconds=2.0, audio=False).read_bytes()
    with pytest.raises(FileError) as e:
        decode_video(data, "l.mp4", max_duration_s=1.0)
    assert e.value.code == ErrorCode.TOO_LONG


@pytest.mark.parametrize("size", [(320, 240), (1280, 720)])
def test_face_detected_and_cropped(cropper: FaceCropper, size: tuple[int, int]) -> None:
    import cv2

    gray = cv2.cvtColor(video_frame(3, size, face=True), cv2.COLOR_BGR2GRAY)
    fc = cropper.crop(gray)
    assert fc.found
    assert fc.crop.shape == (FACE_SPEC.size, FACE_SPEC.size) and fc.crop.dtype == np.uint8
    x, y, w, h = fc.box
    assert w == h and x < size[0] // 2 < x + w and y < size[1] // 2 < y + h  # around the drawn face
    assert 0.35 * size[1] < w < 0.95 * size[1]


def test_no_face_falls_back_to_centre_crop(cropper: FaceCropper) -> None:
    import cv2

    gray = cv2.cvtColor(video_frame(3, (320, 240), face=False), cv2.COLOR_BGR2GRAY)
    fc = cropper.crop(gray)
    assert not fc.found
    assert fc.box == centre_box(320, 240, FACE_SPEC.fallback_frac) == (88, 48, 144, 144)
    assert fc.crop.shape == (64, 64)


def test_expand_box_stays_in_frame() -> None:
    assert expand_box((0, 0, 100, 80), 0.1, 320, 240) == (0, 0, 120, 120)
    x, y, w, h = expand_box((250, 200, 60, 60), 0.2, 320, 240)
    assert x + w <= 320 and y + h <= 240 and w == h == 84
    assert expand_box((10, 10, 500, 500), 0.1, 320, 240)[2] == 240


def test_decode_faces_and_audio_returns_crops_not_frames(tmp_path: Path) -> None:
    from aei_batch.scoring.video import decode_faces_and_audio

    av_bytes = write_video(tmp_path / "av.mp4", seconds=1.0, face=True).read_bytes()
    dec = decode_faces_and_audio(
        av_bytes, "av.mp4", Sampling(every_n=10), max_duration_s=None, audio_sr=22050
    )
    assert len(dec.crops) == 3 and all(c.found and c.crop.shape == (64, 64) for c in dec.crops)
    assert (
        dec.audio is not None
        and dec.audio.sr == 22050
        and dec.audio.duration_s == pytest.approx(1.0, abs=0.05)
    )
    silent = write_video(tmp_path / "v.mp4", seconds=1.0, face=False, audio=False).read_bytes()
    dec2 = decode_faces_and_audio(silent, "v.mp4", Sampling(), max_duration_s=None, audio_sr=22050)
    assert (
        dec2.audio is None and dec2.audio_note is not None and dec2.audio_note.startswith("NO_AUDIO_STREAM")
    )
    assert [c.found for c in dec2.crops] == [False, False]
