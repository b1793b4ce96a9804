"""Face models (the shipped FER2013 network, a small CNN) and late fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aei_batch.models.face import CALM_SHARE, FER_CLASSES, fer_model_path, fer_to_ravdess
from aei_batch.models.fusion import FusionSpec, aggregate_frames, fit_audio_weight, fuse
from aei_batch.records import EMOTIONS


def test_fer_mapping_is_documented_and_sums_to_one() -> None:
    onehots = np.eye(7)
    p8 = fer_to_ravdess(onehots)
    assert p8.shape == (7, 8)
    np.testing.assert_allclose(p8.sum(axis=1), 1.0)
    top = {FER_CLASSES[i]: EMOTIONS[int(np.argmax(p8[i]))] for i in range(7)}
    assert top == {
        "angry": "angry",
        "disgust": "disgust",
        "fear": "fearful",
        "happy": "happy",
        "sad": "sad",
        "surprise": "surprised",
        "neutral": "neutral",
    }
    neutral_row = p8[FER_CLASSES.index("neutral")]
    assert neutral_row[EMOTIONS.index("calm")] == pytest.approx(CALM_SHARE)
    assert neutral_row[EMOTIONS.index("neutral")] == pytest.approx(1 - CALM_SHARE)


def test_fer_model_located_without_importing_fer() -> None:
    import sys

    path = fer_model_path()
    assert path.name == "emotion_model.hdf5" and path.stat().st_size > 100_000
    assert "fer" not in sys.modules


@pytest.mark.slow
def test_pretrained_fer_gives_8_probabilities_on_generated_faces() -> None:
    import cv2

    from aei_batch.features.faces import FaceCropper
    from aei_batch.models.face import load_pretrained_fer
    from tests.support.media import video_frame

    cropper = FaceCropper()
    crops = np.stack(
        [
            cropper.crop(cv2.cvtColor(video_frame(i, (320, 240), face=True), cv2.COLOR_BGR2GRAY)).crop
            for i in range(4)
        ]
    )
    model = load_pretrained_fer()
    p = model.predict_proba8(crops)
    assert p.shape == (4, 8)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (p >= 0).all()
    # The cartoon's round open eyes and oval open mouth read as surprise to a FER2013 model.
    assert all(EMOTIONS[int(k)] == "surprised" for k in p.argmax(axis=1))


@pytest.mark.slow
def test_face_cnn_is_small_and_reloads_in_safe_mode(tmp_path: Path) -> None:
    from aei_batch.models.face import FaceModel, build_face_cnn, load_keras_face

    net = build_face_cnn()
    assert net.count_params() < 1_000_000
    assert net.output_shape == (None, 8)
    path = tmp_path / "face_cnn.keras"
    net.save(path)
    again = FaceModel("face_cnn", "t", load_keras_face(path))
    x = np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8)
    np.testing.assert_allclose(
        again.predict_proba8(x), FaceModel("face_cnn", "t", net).predict_proba8(x), atol=1e-6
    )


def test_fusion_weights_and_normalisation() -> None:
    a = np.array([0.7, 0.0, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0])
    v = np.array([0.1, 0.1, 0.6, 0.1, 0.1, 0.0, 0.0, 0.0])
    for method in ("logprob", "prob"):
        f = fuse(a, v, 0.5, method)
        assert f.sum() == pytest.approx(1.0) and (f > 0).all()  # a zero in one modality does not veto
        assert np.argmax(fuse(a, v, 1.0, method)) == 0
        assert np.argmax(fuse(a, v, 0.0, method)) == 2
    with pytest.raises(ValueError):
        fuse(a, v, 0.5, "max")


def test_fit_prefers_the_informative_modality() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 200)
    audio = np.full((200, 8), 0.05)
    audio[np.arange(200), y] = 0.65  # audio is right
    video = rng.dirichlet(np.ones(8), 200)  # video is noise
    spec = fit_audio_weight(audio, video, y)
    assert spec.audio_weight >= 0.8
    assert spec.heldout_nll is not None and spec.heldout_nll["fitted"] <= spec.heldout_nll["equal"]
    spec2 = fit_audio_weight(video, audio, y)
    assert spec2.audio_weight <= 0.2
    assert FusionSpec.from_dict(spec.to_dict()) == spec
    assert FusionSpec.from_dict(None).audio_weight == 0.5


def test_aggregate_frames_is_the_mean() -> None:
    p = np.array([[1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]], dtype=float)
    np.testing.assert_allclose(aggregate_frames(p), [0.5, 0, 0.5, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        aggregate_frames(np.zeros((0, 8)))
