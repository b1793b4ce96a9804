"""A small Keras CNN on log-mel images (feature set `logmel_patch`), with SpecAugment-style augmentation.

Stored in Keras' native `.keras` format and loaded with `safe_mode=True` (no Lambda layers, no custom
objects: only built-in layers), after the card's SHA-256 check. TensorFlow is imported only when the
model is built or loaded, never at `import aei_batch`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from aei_batch.errors import ModelError
from aei_batch.records import EMOTIONS, N_CLASSES

N_MELS, FRAMES = 64, 192


def _keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def build_cnn(n_classes: int, seed: int) -> Any:
    """Four conv blocks (batch-norm, ReLU, pooling), global average pooling, dropout, softmax."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inp = keras.Input((N_MELS, FRAMES, 1))
    x = inp
    for filters in (16, 32, 48, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random time shift, one frequency mask and one time mask per image (SpecAugment-style)."""
    out = batch.copy()
    for img in out:
        img[:] = np.roll(img, int(rng.integers(-16, 17)), axis=1)
        f0, fw = int(rng.integers(0, N_MELS - 8)), int(rng.integers(0, 9))
        t0, tw = int(rng.integers(0, FRAMES - 24)), int(rng.integers(0, 25))
        img[f0 : f0 + fw, :] = -1.0
        img[:, t0 : t0 + tw] = -1.0
    return out


class KerasAudioClassifier:
    """The CNN behind the tabular `Classifier` protocol: flat `logmel_patch` vectors in, (n, 8) out."""

    kind = "keras_audio"
    suffix = ".keras"

    def __init__(
        self,
        name: str,
        *,
        epochs: int = 40,
        batch_size: int = 32,
        seed: int = 0,
        model: Any = None,
        classes: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.model = model
        self._classes = classes if classes is not None else np.arange(N_CLASSES)

    @property
    def classes(self) -> np.ndarray:
        return self._classes

    @staticmethod
    def _images(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.shape[1] != N_MELS * FRAMES:
            raise ModelError(
                f"the CNN expects logmel_patch features ({N_MELS * FRAMES} values), got {X.shape[1]}"
            )
        return X.reshape(-1, N_MELS, FRAMES, 1)

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._classes = np.unique(y)
        index = {c: i for i, c in enumerate(self._classes)}
        yi = np.array([index[c] for c in y])
        imgs = self._images(X)
        self.model = build_cnn(len(self._classes), self.seed)
        rng = np.random.default_rng(self.seed)
        for _ in range(self.epochs):  # fresh augmentation every epoch
            order = rng.permutation(len(yi))
            self.model.fit(
                augment(imgs[order], rng),
                yi[order],
                batch_size=self.batch_size,
                epochs=1,
                verbose=0,
                shuffle=False,
            )

    def predict_proba8(self, X: np.ndarray) -> np.ndarray:
        from aei_batch.models.tabular import _expand

        if self.model is None:
            raise ModelError(f"model {self.name} is not trained")
        proba = np.asarray(self.model.predict(self._images(X), batch_size=64, verbose=0), dtype=np.float64)
        return _expand(proba, self._classes)

    def save(self, path: Path) -> None:
        if not str(path).endswith(".keras"):
            raise ValueError(f"Keras models are saved as .keras, got {path}")
        self.model.save(path)

    @classmethod
    def load(cls, name: str, path: Path, classes: list[str]) -> KerasAudioClassifier:
        keras = _keras()
        model = keras.models.load_model(path, compile=False, safe_mode=True)
        ids = np.array([EMOTIONS.index(c) for c in classes])
        return cls(name, model=model, classes=ids)
