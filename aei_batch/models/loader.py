"""Load a model directory once per worker and predict 8-class probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError, ModelError
from aei_batch.features import FeatureSet, get_feature_set
from aei_batch.models.card import ArtifactInfo, ModelCard, load_card, materialise, verify_artifact


@dataclass
class LoadedModel:
    """A verified model ready to predict: card, feature set and the chosen classifier."""

    card: ModelCard
    name: str
    feature_set: FeatureSet
    classifier: Any

    @property
    def version(self) -> str:
        return self.card.model_version

    @property
    def speaker_adaptive(self) -> bool:
        """Whether the model expects speaker-normalised features (aei_batch/scoring/speaker.py)."""
        return bool(self.card.options.get("speaker_adaptive"))

    def predict_proba8(self, X: np.ndarray, windows: np.ndarray | None = None) -> np.ndarray:
        """Probabilities from raw features. A speaker-adaptive model, given no speaker statistics here,
        z-scores with the training data's global statistics (its documented fallback). `windows`: as
        `predict_normalised`."""
        if self.speaker_adaptive:
            from aei_batch.models.stats import GlobalStats

            g = GlobalStats.from_json(self.card.options["global_stats"])
            X = ((np.asarray(X, dtype=np.float64) - g.mean) / g.std).astype(np.float32)
        return self._predict(X, None, windows)

    def predict_normalised(
        self,
        X: np.ndarray,
        adapt: list[np.ndarray | None] | None = None,
        windows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probabilities from features already normalised the way the model was trained; `adapt` gives
        each row its speaker group's adaptation statistics (`adaptation_stats`) or None; `windows` flags
        the rows that are windows of a long recording (scored with the model's window temperature, if
        it has one)."""
        return self._predict(X, adapt if adapt is not None and self.adapts else None, windows)

    def _predict(
        self, X: np.ndarray, adapt: list[np.ndarray | None] | None, windows: np.ndarray | None
    ) -> np.ndarray:
        kw: dict[str, Any] = {}
        if adapt is not None:
            kw["adapt"] = adapt
        if windows is not None and self.window_temperature is not None:
            kw["windows"] = windows
        return np.asarray(self.classifier.predict_proba8(X, **kw), dtype=np.float64)

    @property
    def window_temperature(self) -> float | None:
        """The temperature windows of long recordings get, if the model has its own (None: the file
        temperature, as every model before issue 15 round 8)."""
        t = getattr(self.classifier, "window_temperature", None)
        return None if t is None else float(t)

    @property
    def adapts(self) -> bool:
        """Whether the model adapts its class means to each speaker group (models/adapt.py)."""
        return self.speaker_adaptive and bool(getattr(self.classifier, "adapts", False))

    def adaptation_stats(self, Z: np.ndarray) -> np.ndarray | None:
        """A speaker group's adaptation statistics from some of its normalised rows (chunks add up)."""
        return self.classifier.adaptation_stats(Z) if self.adapts else None

    def adaptation_of(
        self, Z: np.ndarray, groups: list[str | None], min_rows: int
    ) -> list[np.ndarray | None] | None:
        """Per row: its group's statistics from these rows (groups of at least `min_rows`), or None when
        the model does not adapt."""
        if not self.adapts:
            return None
        from aei_batch.models.adapt import per_row_stats

        return per_row_stats(self.classifier.adaptation_stats, Z, groups, min_rows)


def _load_classifier(local_dir: Any, name: str, art: ArtifactInfo) -> Any:
    from aei_batch.models.tabular import SklearnClassifier, XGBoostClassifier

    path = verify_artifact(local_dir, art)
    try:
        if art.kind == "xgboost":
            return XGBoostClassifier.load(name, path, art.classes)
        if art.kind == "sklearn":
            return SklearnClassifier.load(name, path)
        if art.kind == "keras_audio":
            from aei_batch.models.keras_audio import KerasAudioClassifier

            return KerasAudioClassifier.load(name, path, art.classes)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load model {name} from {path.name}: {type(exc).__name__}: {exc}") from None
    raise ModelError(f"model {name} has unknown kind {art.kind!r}")


def check_feature_hash(card: ModelCard) -> FeatureSet:
    """The extractor this code would run must be the one the model was trained on."""
    fs_info = card.feature_set
    version = fs_info.get("version")
    try:  # the version the card names (an older one stays registered); a card without one: the newest
        fs = get_feature_set(str(fs_info.get("name")), int(version) if isinstance(version, int) else None)
    except ConfigError as exc:  # an unknown name in the card is the model's problem, not the flags'
        raise ModelError(
            f"the model card names feature set {fs_info.get('name')!r}"
            + (f" version {version}" if version is not None else "")
            + ", which this aei_batch does not have",
            hint=f"{exc.hint or ''}; retrain the model, or use the aei_batch version that trained it".lstrip(
                "; "
            ),
        ) from None
    if fs.param_hash != fs_info.get("hash"):
        raise ModelError(
            f"model was trained on feature set {fs_info.get('name')} with hash {fs_info.get('hash')}, "
            f"but this aei_batch computes hash {fs.param_hash}",
            hint="retrain the model with this version of aei_batch (features changed since it was trained)",
        )
    return fs


def check_options(card: ModelCard, fs: FeatureSet) -> None:
    """A speaker-adaptive card must carry global statistics of the feature set's dimension: a wrong
    shape would broadcast silently (or not at all) and turn every prediction into the same class."""
    if not card.options.get("speaker_adaptive"):
        return
    stats = card.options.get("global_stats")
    problem = None
    if not isinstance(stats, dict) or not {"mean", "std"} <= set(stats):
        problem = "has no options.global_stats with 'mean' and 'std'"
    else:
        try:
            mean = np.asarray(stats["mean"], dtype=np.float64)
            std = np.asarray(stats["std"], dtype=np.float64)
        except (TypeError, ValueError):
            mean = std = np.zeros(0)
        if mean.shape != (fs.dim,) or std.shape != (fs.dim,):
            problem = (
                f"has options.global_stats of shape mean {mean.shape}, std {std.shape}; "
                f"feature set {fs.name} has {fs.dim} features"
            )
        elif not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            problem = "has options.global_stats with non-finite values or a std that is not positive"
    if problem:
        raise ModelError(
            f"the speaker-adaptive model card {problem}",
            hint="the card was edited or corrupted: restore the model directory or retrain it",
        )


def load_model(model_dir: str, name: str | None = None) -> LoadedModel:
    """Verify and load `name` (default: the card's default model) from a local or s3:// model directory."""
    local = materialise(model_dir)
    card = load_card(local)
    if card.options.get("modality") == "video":
        raise ModelError(
            f"{model_dir} holds a video (face) model, not an audio model",
            hint="pass it as --video-model; --model-dir takes an audio model directory",
        )
    fs = check_feature_hash(card)
    check_options(card, fs)
    chosen = name or card.default_model
    if chosen not in card.models:
        raise ModelError(
            f"model {chosen!r} not in {model_dir}", hint=f"choose one of: {', '.join(sorted(card.models))}"
        )
    return LoadedModel(card, chosen, fs, _load_classifier(local, chosen, card.models[chosen]))
