"""Tabular classifiers on feature vectors: the seed study's SVC, XGBoost and random forest.

Each maps to the 8 RAVDESS classes: probabilities come back as (n, 8) in `EMOTIONS` order, with zeros
for classes the model never saw in training.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aei_batch.errors import ModelError
from aei_batch.records import EMOTIONS, N_CLASSES

#: skops types we allow on load besides skops' own trusted defaults. Anything else is refused.
SKOPS_ALLOWED = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.calibration._TemperatureScaling",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn._loss.link.Interval",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.SoftmaxLink",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "numpy.dtype",
        "builtins.getattr",
        "sklearn.utils._bunch.Bunch",  # VotingClassifier.named_estimators_ (a dict with attribute access)
        "aei_batch.models.ensemble.WeightedBlend",  # the `blend` model (members are sklearn pipelines)
    }
)


class Classifier(Protocol):
    name: str
    kind: str

    def fit(self, X: np.ndarray, y: np.ndarray) -> None: ...
    def predict_proba8(self, X: np.ndarray) -> np.ndarray: ...
    def save(self, path: Path) -> None: ...


def _expand(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Place a model's per-class columns (class ids 0..7) into the 8-column EMOTIONS layout."""
    out = np.zeros((proba.shape[0], N_CLASSES), dtype=np.float64)
    out[:, classes.astype(int)] = proba
    return out


class SklearnClassifier:
    """Any scikit-learn classifier with predict_proba, stored with skops."""

    kind = "sklearn"
    suffix = ".skops"

    def __init__(self, name: str, estimator: Any) -> None:
        self.name = name
        self.estimator = estimator

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        calibration_rows: np.ndarray | None = None,
        adapt_groups: np.ndarray | None = None,
        window_rows: Any = None,
    ) -> None:
        """Fit; `groups` (the speaker of each row) reaches estimators that select inside their training
        data (`WeightedBlend`), so their inner splits never share a speaker; `calibration_rows` (a mask:
        the original files' rows, not their augmented copies) reaches estimators that fit a temperature;
        `adapt_groups` (speaker-adaptive training: each row's normalisation group) reaches estimators that
        adapt to each speaker group (models/adapt.py); `window_rows` (models/ensemble.py `WindowRows`)
        reaches estimators that fit a temperature of their own for call windows."""
        kw: dict[str, Any] = {}
        if groups is not None and getattr(self.estimator, "accepts_groups", False):
            kw["groups"] = groups
        if calibration_rows is not None and getattr(self.estimator, "accepts_calibration_rows", False):
            kw["calibration_rows"] = calibration_rows
        if adapt_groups is not None and getattr(self.estimator, "accepts_adapt_groups", False):
            kw["adapt_groups"] = adapt_groups
        if window_rows is not None and getattr(self.estimator, "accepts_window_rows", False):
            kw["window_rows"] = window_rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.estimator.fit(X, y, **kw)

    @property
    def classes(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_)

    def predict_proba8(
        self, X: np.ndarray, adapt: list[np.ndarray | None] | None = None, windows: np.ndarray | None = None
    ) -> np.ndarray:
        """`adapt` (per row: its speaker group's adaptation statistics or None) reaches estimators that
        adapt to speaker groups; others ignore it. `windows` (per row: whether it is a window of a long
        recording) reaches estimators with a window temperature (`window_temperature`)."""
        kw: dict[str, Any] = {}
        if adapt is not None and self.adapts:
            kw["adapt"] = adapt
        if windows is not None and self.window_temperature is not None:
            kw["windows"] = windows
        return _expand(self.estimator.predict_proba(X, **kw), self.classes)

    @property
    def window_temperature(self) -> float | None:
        """The temperature the estimator gives windows of long recordings, if it has its own (a blend
        fitted with window rows, since issue 15 round 8); None: windows are scored as whole files."""
        t = getattr(self.estimator, "window_temperature_", None)
        return None if t is None else float(t)

    @property
    def adapts(self) -> bool:
        """Whether the estimator adapts to each speaker group (the default `blend`, speaker-adaptive)."""
        return bool(getattr(self.estimator, "adapts", False))

    def adaptation_stats(self, X: np.ndarray) -> np.ndarray | None:
        return self.estimator.adaptation_stats(X) if self.adapts else None

    def save(self, path: Path) -> None:
        import skops.io as sio

        sio.dump(self.estimator, path)

    @classmethod
    def load(cls, name: str, path: Path) -> SklearnClassifier:
        import skops.io as sio

        untrusted = sio.get_untrusted_types(file=path)
        refused = sorted(set(untrusted) - SKOPS_ALLOWED)
        if refused:
            raise ModelError(f"model {path.name} contains types that are not allowed: {refused}")
        return cls(name, sio.load(path, trusted=list(untrusted)))


class XGBoostClassifier:
    """XGBoost, stored in its own JSON format. Class ids are remapped to 0..k-1 for training."""

    kind = "xgboost"
    suffix = ".xgb.json"

    def __init__(
        self, name: str, params: dict[str, Any] | None = None, classes: np.ndarray | None = None
    ) -> None:
        import xgboost as xgb

        self.name = name
        self.params = {
            "n_estimators": 400,
            "max_depth": 4,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.6,
            "tree_method": "hist",
            "n_jobs": 1,
            "random_state": 0,
            **(params or {}),
        }
        self.model = xgb.XGBClassifier(**self.params)
        self._classes = classes if classes is not None else np.arange(N_CLASSES)

    @property
    def classes(self) -> np.ndarray:
        return self._classes

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._classes = np.unique(y)
        index = {c: i for i, c in enumerate(self._classes)}
        self.model.fit(X, np.array([index[c] for c in y]))

    def predict_proba8(self, X: np.ndarray) -> np.ndarray:
        return _expand(self.model.predict_proba(X), self._classes)

    def save(self, path: Path) -> None:
        self.model.save_model(str(path))

    @classmethod
    def load(cls, name: str, path: Path, classes: list[str]) -> XGBoostClassifier:
        ids = np.array([EMOTIONS.index(c) for c in classes])
        obj = cls(name, classes=ids)
        obj.model.load_model(str(path))
        return obj


def seed_models(seed: int = 0) -> list[Any]:
    """The seed study's three models (SVC with an RBF kernel, XGBoost, random forest)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    svc = make_pipeline(
        StandardScaler(),
        CalibratedClassifierCV(
            SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed), ensemble=False, cv=3
        ),
    )
    rf = RandomForestClassifier(n_estimators=300, min_samples_leaf=1, n_jobs=1, random_state=seed)
    return [
        SklearnClassifier("svc", svc),
        XGBoostClassifier("xgboost", {"random_state": seed}),
        SklearnClassifier("random_forest", rf),
    ]
