"""Training video models end to end on generated RAVDESS-named clips, then scoring with them.

There is no real RAVDESS video on this machine: the clips are generated (tests/support/media.py), so this
proves the path (decode -> crops -> Keras fit -> .keras + card -> safe load -> scoring), not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aei_batch.errors import ModelError
from tests.support.media import ravdess_name, write_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def labelled_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("labelled_videos")
    for actor in (1, 2, 3, 4):
        for emotion, face in ((3, True), (4, False)):  # happy with a face, sad without: separable
            modality = 1 if actor != 2 else 2  # one video-only actor
            write_video(
                root / ravdess_name(modality, 1, emotion, 1, 1, 1, actor, ".mp4"),
                face=face,
                audio=modality == 1,
                seconds=1.0,
                audio_freq=220.0 * emotion,
            )
    return root


def test_train_video_models_and_score_with_them(
    labelled_videos: Path, trained_model: Path, tmp_path: Path
) -> None:
    from aei_batch.io.sinks.parquet import read_table
    from aei_batch.models.face import load_video_model, resolve_video_model
    from aei_batch.scoring.job import ScoreOptions, run_score
    from aei_batch.training.train import TrainOptions, run_train

    model_dir = tmp_path / "video_model"
    card = run_train(
        TrainOptions(
            data=str(labelled_videos),
            model_dir=str(model_dir),
            holdout_actors=[4],
            runner="local",
            progress=False,
            modality="auto",
            audio_model_dir=str(trained_model),
            frame_every=5,
            epochs=3,
        )
    )
    assert card.options["modality"] == "video"
    assert set(card.models) == {"face_cnn", "fer_transfer"}
    assert card.training["holdout_actors"] == [4] and card.training["n_heldout"] == 2
    assert card.training["n_train_crops"] == 6 * 5
    for art in card.models.values():
        assert art.kind == "keras-face" and (model_dir / art.file).suffix == ".keras"
        assert art.heldout["n"] == 2 and 0.0 <= art.heldout["accuracy"] <= 1.0
        assert art.params["params"] < 1_000_000
    fusion = card.options["fusion"]
    assert fusion["source"].startswith("fitted on held-out actors [4]") and fusion["n_files"] == 2
    assert 0.0 <= fusion["audio_weight"] <= 1.0

    ref = resolve_video_model(str(model_dir))
    assert ref.name == card.default_model and ref.fusion == fusion
    assert load_video_model(str(model_dir), "face_cnn").predict_proba8(
        __import__("numpy").zeros((2, 64, 64), "uint8")
    ).shape == (2, 8)

    out = tmp_path / "out"
    run_score(
        ScoreOptions(
            source=str(labelled_videos),
            model_dir=str(trained_model),
            output=str(out),
            table_format="parquet",
            runner="local",
            video_model=str(model_dir),
            progress=False,
        )
    )
    rows = read_table(str(out)).to_pylist()
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert {r["video_model"] for r in rows} == {f"{card.default_model}@{card.model_version}"}
    av = [r for r in rows if r["modalities_used"] == "audio+video"]
    assert len(av) == 6 and {r["fusion_audio_weight"] for r in av} == {fusion["audio_weight"]}

    # a tampered artifact is refused before anything loads
    art = card.models["face_cnn"]
    (model_dir / art.file).write_bytes((model_dir / art.file).read_bytes() + b"x")
    with pytest.raises(ModelError, match="checksum"):
        resolve_video_model(str(model_dir), "face_cnn")


def test_video_model_dir_refused_as_audio_model(labelled_videos: Path, tmp_path: Path) -> None:
    from aei_batch.models.loader import load_model
    from aei_batch.training.train import TrainOptions, run_train

    model_dir = tmp_path / "vm"
    run_train(
        TrainOptions(
            data=str(labelled_videos),
            model_dir=str(model_dir),
            holdout_actors=[],
            runner="local",
            progress=False,
            modality="video",
            models=("face_cnn",),
            frame_every=10,
            epochs=1,
        )
    )
    card = json.loads((model_dir / "card.json").read_text())
    assert card["options"]["fusion"]["source"].startswith("default")
    with pytest.raises(ModelError, match="video"):
        load_model(str(model_dir))
