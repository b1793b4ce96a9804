"""The model zoo beyond the seed study, and the soft-voting ensemble that wins the actor-grouped CV.

Every builder returns a fresh, unfitted `Classifier` (see models/tabular.py). scikit-learn models are
stored with skops (types checked against the allowlist on load), so an ensemble is one
`VotingClassifier` in one `.skops` file. Hyperparameters are the ones the actor-grouped search chose
(docs/MODELS.md); `--search` re-runs that search.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aei_batch.errors import ConfigError

#: ensemble members, in order; each is also trainable on its own
ENSEMBLE_MEMBERS = ("lda", "lda_shrunk", "svc_tuned", "logreg")


def _lda() -> Any:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))


def _lda_shrunk(shrinkage: float = 0.5) -> Any:
    """LDA with a fixed, strong shrinkage of the shared covariance towards its diagonal."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage))


def _lda_calibrated() -> Any:
    """LDA with temperature scaling fitted on 5-fold out-of-fold scores (ensemble=False: one LDA on all data,
    so its decisions equal plain LDA's; only the over-confident probabilities are softened)."""
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(_lda(), method="temperature", cv=5, ensemble=False)


def _svc_tuned(seed: int, dim: int, C: float = 10.0, gamma_scale: float = 0.3) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # gamma below sklearn's "scale" (1/dim on standardised data): the rich sets have many correlated columns
    return make_pipeline(
        StandardScaler(), SVC(C=C, gamma=gamma_scale / max(dim, 1), probability=True, random_state=seed)
    )


def _logreg(seed: int, C: float = 0.01) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, random_state=seed))


def _voting(seed: int, dim: int, p: dict[str, dict[str, Any]]) -> Any:
    from sklearn.ensemble import VotingClassifier

    members = {
        "lda": _lda(),
        "lda_shrunk": _lda_shrunk(**p.get("lda_shrunk", {})),
        "svc_tuned": _svc_tuned(seed, dim, **p.get("svc_tuned", {})),
        "logreg": _logreg(seed, **p.get("logreg", {})),
    }
    return VotingClassifier([(n, members[n]) for n in ENSEMBLE_MEMBERS], voting="soft", n_jobs=1)


def builders(p: dict[str, dict[str, Any]] | None = None) -> dict[str, Callable[[int, int], Any]]:
    """name -> (seed, feature dim) -> unfitted Classifier. Includes the seed study's three.

    `p` overrides hyperparameters per family (what `--search` found), e.g.
    {"svc_tuned": {"C": .., "gamma_scale": ..}, "logreg": {"C": ..}}; the ensemble's members use them too.
    """
    p = p or {}
    from aei_batch.models.tabular import SklearnClassifier, XGBoostClassifier, seed_models

    def seed_one(name: str) -> Callable[[int, int], Any]:
        return lambda seed, dim: next(m for m in seed_models(seed) if m.name == name)

    return {
        "svc": seed_one("svc"),
        "xgboost": seed_one("xgboost"),
        "random_forest": seed_one("random_forest"),
        "lda": lambda seed, dim: SklearnClassifier("lda", _lda()),
        "lda_calibrated": lambda seed, dim: SklearnClassifier("lda_calibrated", _lda_calibrated()),
        "lda_shrunk": lambda seed, dim: SklearnClassifier(
            "lda_shrunk", _lda_shrunk(**p.get("lda_shrunk", {}))
        ),
        "svc_tuned": lambda seed, dim: SklearnClassifier(
            "svc_tuned", _svc_tuned(seed, dim, **p.get("svc_tuned", {}))
        ),
        "logreg": lambda seed, dim: SklearnClassifier("logreg", _logreg(seed, **p.get("logreg", {}))),
        "xgboost_tuned": lambda seed, dim: XGBoostClassifier(
            "xgboost_tuned",
            {
                "random_state": seed,
                "n_estimators": 600,
                "max_depth": 3,
                "colsample_bytree": 0.3,
                "learning_rate": 0.05,
            },
        ),
        "ensemble": lambda seed, dim: SklearnClassifier("ensemble", _voting(seed, dim, p)),
        "cnn": lambda seed, dim: _cnn(seed, p.get("cnn", {})),
    }


def _cnn(seed: int, params: dict[str, Any]) -> Any:
    from aei_batch.models.keras_audio import KerasAudioClassifier

    return KerasAudioClassifier("cnn", seed=seed, **params)


def build_models(
    names: tuple[str, ...] | list[str], seed: int, dim: int, params: dict[str, dict[str, Any]] | None = None
) -> list[Any]:
    """Fresh classifiers for `names`; unknown names fail fast with the list of choices."""
    table = builders(params)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}", hint=f"choose from: {', '.join(table)}")
    if not names:
        raise ConfigError("no models requested", hint=f"--models takes a comma list of: {', '.join(table)}")
    return [table[n](seed, dim) for n in names]
