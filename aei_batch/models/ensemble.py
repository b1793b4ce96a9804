"""The model zoo beyond the seed study, and the soft-voting ensemble that wins the actor-grouped CV.

Every builder returns a fresh, unfitted `Classifier` (see models/tabular.py). scikit-learn models are
stored with skops (types checked against the allowlist on load), so an ensemble is one
`VotingClassifier` in one `.skops` file. Hyperparameters are the ones the actor-grouped search chose
(docs/MODELS.md); `--search` re-runs that search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aei_batch.errors import ConfigError

#: ensemble members, in order; each is also trainable on its own
ENSEMBLE_MEMBERS = ("lda", "lda_shrunk", "svc_tuned", "logreg")

#: `blend` candidates: (name, family, first n columns or 0 for all). 701 = `rich_audio`'s block, which
#: `voice_audio` starts with, so the blend can choose between the two feature sets inside its training data.
BLEND_CANDIDATES: tuple[tuple[str, str, int], ...] = (
    ("lda_all", "lda", 0),
    ("lda_rich", "lda", 701),
    ("lda_shrunk_all", "lda_shrunk", 0),
    ("logreg_all", "logreg", 0),
)


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


class WeightedBlend:
    """Soft vote whose members, weights and temperature are chosen inside its own training data.

    `fit(X, y, groups)` scores every candidate of `BLEND_CANDIDATES` by grouped cross-validation on
    the rows it is given (groups = speakers, so a speaker is never on both sides of an inner split),
    keeps the candidate or equal-weight soft vote of `combos` (None, the default: every pair of candidates)
    with the best out-of-fold accuracy (`select="accuracy"`, the default) or picks
    members and weights by greedy forward selection with replacement on the out-of-fold log-loss
    (`select="logloss"`, Caruana et al., 2004), fits one temperature on the blended out-of-fold
    scores, then refits the chosen members on all rows. Nothing outside the training rows is looked
    at, so a CV around it is nested. A scikit-learn-style estimator stored with skops (its type is on
    the allowlist).

    The pairs are equal-weight means of the two members' log-probabilities, scored on the same out-of-
    fold scores as the single candidates (no extra inner fits); a tie goes to the single candidate. With
    them the blend's ECE on clips fell from 0.051 / 0.053 to under 0.05 at the same accuracy
    (docs/MODELS.md). `combos=()` restores the single-candidate choice.

    `calibration_rows` (a boolean mask over the rows) restricts the temperature fit to those rows' out-of-
    fold scores: training passes the original files' rows, so augmented copies (crops, telephone copies),
    which are less certain than whole clips, do not soften every prediction (docs/MODELS.md). Members and
    weights are still chosen on all rows.

    `calibration_folds` (8; 0 = the members' inner folds): the temperature is fitted on out-of-fold scores
    of the chosen blend from this many speaker-grouped folds, each fitted on nearly all the training
    speakers as the final members are. Fitted on the 3-fold scores of the choice (models fitted on two
    thirds of the speakers, less sure of themselves than the final one), it came out too high in four
    outer folds of five and left the per-file model under-confident (ECE 0.072; 0.035 with 8 folds,
    docs/MODELS.md round 5). With fewer groups than that it falls back to the inner folds.

    `adapt_groups` (speaker-adaptive training: each row's normalisation group, a speaker or a speaker's
    kind of copy) adds per-group adaptation of the class means (models/adapt.py): its relevance factor,
    or none, is chosen by the same inner CV, each inner held-out group adapted on its own rows, and the
    temperature is fitted on the adapted scores. At prediction, `adapt` gives each row its group's
    statistics (`adaptation_stats`); without it the blend predicts as it would unadapted.

    `window_rows` (`WindowRows`: windows of generated calls of the training speakers, normalised as
    scoring would, not training rows) are scored out of fold by the same `calibration_folds` models, each
    window by the fold models that did not see its speaker, and a second temperature is fitted on them:
    `window_temperature_`, which `predict_proba(..., windows=mask)` uses for the rows that are windows of
    a long recording. A 3 s window holds part of a clip, sometimes the ends of two, and the whole-file
    temperature left the windows over-confident (ECE 0.12-0.13; docs/MODELS.md round 8). With fewer
    speakers than `calibration_folds`, the windows' folds leave one speaker out each. Without window rows
    (or with one speaker), windows get the file temperature.
    """

    accepts_groups = True
    accepts_calibration_rows = True
    accepts_adapt_groups = True
    accepts_window_rows = True

    def __init__(
        self,
        candidates: tuple[tuple[str, str, int], ...] = BLEND_CANDIDATES,
        inner_folds: int = 3,
        rounds: int = 8,
        seed: int = 0,
        select: str = "accuracy",
        combos: tuple[tuple[str, ...], ...] | None = None,
        calibration_folds: int = 8,
    ) -> None:
        self.candidates = candidates
        self.calibration_folds = calibration_folds
        self.combos = combos
        self.inner_folds = inner_folds
        self.rounds = rounds
        self.seed = seed
        self.select = select

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        keys = ("candidates", "inner_folds", "rounds", "seed", "select", "combos")
        out = {k: getattr(self, k, ()) for k in keys}  # blends saved before `combos` had none
        out["calibration_folds"] = getattr(self, "calibration_folds", 0)
        return out

    def _make(self, family: str, dim: int) -> Any:
        if family == "lda":
            return _lda()
        if family == "lda_shrunk":
            return _lda_shrunk()
        if family == "logreg":
            return _logreg(self.seed)
        if family == "svc":
            return _svc_tuned(self.seed, dim)
        raise ValueError(f"unknown blend family {family!r}")

    @staticmethod
    def _cols(X: Any, n: int) -> Any:
        return X[:, :n] if n and n < X.shape[1] else X

    def _proba(self, est: Any, X: Any, n_cols: int) -> Any:
        import numpy as np

        p = est.predict_proba(self._cols(X, n_cols))
        out = np.full((len(X), len(self.classes_)), 1e-12)
        out[:, np.searchsorted(self.classes_, est.classes_)] = p
        return out

    def fit(
        self,
        X: Any,
        y: Any,
        groups: Any = None,
        calibration_rows: Any = None,
        adapt_groups: Any = None,
        window_rows: WindowRows | None = None,
    ) -> WeightedBlend:
        import numpy as np
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        cands = [c for c in self.candidates if not c[2] or c[2] <= X.shape[1]]
        idx = np.searchsorted(self.classes_, y)
        if groups is not None and len(np.unique(groups)) >= self.inner_folds:
            splits = list(GroupKFold(self.inner_folds).split(X, y, groups))
        else:
            k = max(2, min(self.inner_folds, int(np.bincount(idx).min())))
            splits = list(StratifiedKFold(k, shuffle=True, random_state=self.seed).split(X, y))
        oof = np.zeros((len(cands), len(X), len(self.classes_)))
        for tr, te in splits:
            for c, (_, family, n) in enumerate(cands):
                est = self._make(family, n or X.shape[1])
                est.fit(self._cols(X[tr], n), y[tr])
                oof[c, te] = self._proba(est, X[te], n)
        logp = np.log(np.clip(oof, 1e-12, 1.0))
        self.inner_scores_ = {cands[c][0]: float((oof[c].argmax(1) == idx).mean()) for c in range(len(cands))}
        counts = np.zeros(len(cands))
        blend = np.zeros_like(logp[0])
        if self.select == "accuracy":  # the candidate or pair with the best out-of-fold accuracy
            options = [(c,) for c in range(len(cands))] + self._combo_ids([c[0] for c in cands])
            label = ["+".join(cands[c][0] for c in opt) for opt in options]
            for opt, name in zip(options[len(cands) :], label[len(cands) :], strict=True):
                self.inner_scores_[name] = float((logp[list(opt)].mean(axis=0).argmax(1) == idx).mean())
            scores = [self.inner_scores_[name] for name in label]
            best_opt = options[int(np.argmax(scores))]  # ties: the first, so a single before any pair
            counts[list(best_opt)] = 1
            blend = logp[list(best_opt)].mean(axis=0)
        for r in range(
            self.rounds if self.select != "accuracy" else 0
        ):  # greedy selection with replacement on out-of-fold log-loss
            losses = []
            for c in range(len(cands)):
                trial = (blend * r + logp[c]) / (r + 1)
                losses.append(_nll(trial, idx, 1.0))
            best = int(np.argmin(losses))
            counts[best] += 1
            blend = (blend * r + logp[best]) / (r + 1)
        self.adapt_tau_: float | None = None
        if adapt_groups is not None:  # speaker-adaptive training: per-group adaptation, tau chosen inside
            blend = self._fit_adaptation(X, idx, splits, np.asarray(adapt_groups), blend)
        cal = _calibration_mask(calibration_rows, len(X))
        self.window_temperature_: float | None = None
        n_groups = 0 if groups is None else len(np.unique(groups))
        windows = None
        if self.calibration_folds and n_groups >= self.calibration_folds:
            blend, windows = self._calibration_scores(
                X,
                y,
                idx,
                np.asarray(groups),
                cands,
                counts,
                adapt_groups,
                cal,
                self.calibration_folds,
                window_rows,
            )
        elif window_rows is not None and n_groups >= 2:  # few speakers: the windows leave one speaker out
            _, windows = self._calibration_scores(
                X, y, idx, np.asarray(groups), cands, counts, adapt_groups, cal, n_groups, window_rows
            )
        if windows is not None:
            self.window_temperature_ = _fit_temperature(*windows)
        self.temperature_ = _fit_temperature(blend[cal], idx[cal])
        self.members_ = []
        self.weights_ = []
        for c in (int(i) for i in np.flatnonzero(counts)):
            name, family, n = cands[c]
            est = self._make(family, n or X.shape[1])
            est.fit(self._cols(X, n), y)
            self.members_.append((name, n, est))
            self.weights_.append(float(counts[c] / counts.sum()))
        return self

    def _calibration_scores(
        self,
        X: Any,
        y: Any,
        idx: Any,
        groups: Any,
        cands: Any,
        counts: Any,
        adapt_groups: Any,
        cal: Any,
        folds: int,
        window_rows: WindowRows | None = None,
    ) -> tuple[Any, tuple[Any, Any] | None]:
        """Out-of-fold scores of the chosen blend (members, weights, adaptation) on the calibration rows,
        from `folds` speaker-grouped folds (`calibration_folds`): models fitted on nearly all the speakers,
        as the final one is, so the temperature is not fitted on the weaker models of the 3-fold choice.
        With `window_rows`, also (scores, class indices) of the windows, each scored by the fold that held
        out its speaker (None when no window's label or speaker is known to the fit)."""
        import numpy as np
        from sklearn.model_selection import GroupKFold

        from aei_batch.models.adapt import AdaptationSpace, group_deltas

        out = np.zeros((len(X), len(self.classes_)))
        w = counts / counts.sum()
        win = _usable_windows(window_rows, self.classes_, groups)
        # window scores: all zeros (and unused) without window rows
        wX = np.zeros((0, X.shape[1])) if win is None else win.X
        wg = None if win is None or win.adapt_groups is None else np.asarray(win.adapt_groups)
        wspk = np.zeros(0) if win is None else win.speakers
        win_out = np.zeros((len(wX), len(self.classes_)))
        for tr, te in GroupKFold(folds).split(X, y, groups):
            te = te[cal[te]]
            wte = np.flatnonzero(np.isin(wspk, np.unique(groups[te])))  # windows of this fold's speakers
            for c in (int(i) for i in np.flatnonzero(counts)):
                _, family, n = cands[c]
                est = self._make(family, n or X.shape[1])
                est.fit(self._cols(X[tr], n), y[tr])
                out[te] += w[c] * np.log(np.clip(self._proba(est, X[te], n), 1e-12, 1.0))
                if len(wte):
                    win_out[wte] += w[c] * np.log(np.clip(self._proba(est, wX[wte], n), 1e-12, 1.0))
            if self.adapt_tau_ is not None:
                space = AdaptationSpace.fit(X[tr], idx[tr], len(self.classes_))
                out[te] += group_deltas(space, X[te], np.asarray(adapt_groups)[te], (self.adapt_tau_,))[0]
                if len(wte) and wg is not None:
                    win_out[wte] += group_deltas(space, wX[wte], wg[wte], (self.adapt_tau_,))[0]
        if win is None:
            return out, None
        return out, (win_out, np.searchsorted(self.classes_, win.y))

    def _fit_adaptation(self, X: Any, idx: Any, splits: Any, groups: Any, blend: Any) -> Any:
        """Choose the relevance factor of per-group adaptation (models/adapt.py) by the same inner
        speaker-grouped CV and rule as the members (out-of-fold accuracy over all rows; None, no
        adaptation, wins ties), fit its space on all rows, and return the blended out-of-fold scores
        with the chosen adaptation (the temperature is fitted on them)."""
        import numpy as np

        from aei_batch.models.adapt import TAUS, AdaptationSpace, group_deltas

        k = len(self.classes_)
        inner = [np.zeros((len(X), k)) for _ in TAUS]
        for tr, te in splits:
            space = AdaptationSpace.fit(X[tr], idx[tr], k)
            for t, d in enumerate(group_deltas(space, X[te], groups[te], TAUS)):
                inner[t][te] = d
        acc = [float(((blend + d).argmax(1) == idx).mean()) for d in inner]
        best = int(np.argmax(acc))
        self.adapt_scores_ = {str(t): a for t, a in zip(TAUS, acc, strict=True)}
        self.adapt_tau_ = TAUS[best]
        if self.adapt_tau_ is None:
            return blend
        space = AdaptationSpace.fit(X, idx, k)
        self.adapt_center_: Any = space.center
        self.adapt_scale_: Any = space.scale
        self.adapt_proj_: Any = space.proj
        self.adapt_means_: Any = space.means
        return blend + inner[best]

    @property
    def adapts(self) -> bool:
        """Whether this blend adapts to each speaker group (models fitted before it never do)."""
        return getattr(self, "adapt_tau_", None) is not None

    def _space(self) -> Any:
        from aei_batch.models.adapt import AdaptationSpace

        return AdaptationSpace(self.adapt_center_, self.adapt_scale_, self.adapt_proj_, self.adapt_means_)

    def adaptation_stats(self, X: Any) -> Any:
        """A speaker group's adaptation statistics from some of its (normalised) rows; chunks add up."""
        return self._space().stats(X) if self.adapts else None

    def _combo_ids(self, names: list[str]) -> list[tuple[int, ...]]:
        """`combos` as tuples of indices into this fit's candidates (`names`). A combo naming something
        that is not a candidate fails; one whose member was left out (more columns than X has) is skipped."""
        known = [c[0] for c in self.candidates]
        combos = getattr(self, "combos", ())
        if combos is None:
            combos = tuple((a, b) for i, a in enumerate(known) for b in known[i + 1 :])
        out = []
        for combo in combos:
            unknown = [m for m in combo if m not in known]
            if unknown:
                raise ValueError(f"blend combo {combo!r} names no candidate: {unknown}")
            if all(m in names for m in combo):
                out.append(tuple(names.index(m) for m in combo))
        return out

    def decision_function(self, X: Any, adapt: Any = None) -> Any:
        """The weighted mean of the members' log-probabilities (before the temperature). `adapt`: one
        entry per row, its group's `adaptation_stats` (the same object for a group's rows) or None;
        rows with statistics get their group's adaptation (models/adapt.py)."""
        import numpy as np

        X = np.asarray(X, dtype=np.float64)
        z = np.zeros((len(X), len(self.classes_)))
        for (_, n, est), w in zip(self.members_, self.weights_, strict=True):
            z += w * np.log(np.clip(self._proba(est, X, n), 1e-12, 1.0))
        if adapt is None or not self.adapts:
            return z
        if len(adapt) != len(X):
            raise ValueError(f"adapt needs one entry per row ({len(X)}), got {len(adapt)}")
        space = self._space()
        rows: dict[int, list[int]] = {}
        for i, st in enumerate(adapt):
            if st is not None:
                rows.setdefault(id(st), []).append(i)
        for sel in rows.values():
            means = space.adapted_means(adapt[sel[0]], float(self.adapt_tau_))  # type: ignore[arg-type]
            z[sel] += space.delta(X[sel], means)
        return z

    def predict_proba(self, X: Any, adapt: Any = None, windows: Any = None) -> Any:
        """`windows` (a boolean per row, or None): rows that are windows of a long recording take the
        window temperature, when the fit had one; the others the file temperature."""
        import numpy as np

        z = self.decision_function(X, adapt)
        tw = getattr(self, "window_temperature_", None)  # blends fitted before round 8 have none
        if windows is None or tw is None:
            return _softmax(z / self.temperature_)
        mask = np.asarray(windows, dtype=bool)
        if mask.shape != (len(z),):
            raise ValueError(f"windows needs one flag per row ({len(z)}), got shape {mask.shape}")
        return _softmax(z / np.where(mask, tw, self.temperature_)[:, None])

    def predict(self, X: Any, adapt: Any = None) -> Any:
        return self.classes_[self.decision_function(X, adapt).argmax(axis=1)]


@dataclass(frozen=True)
class WindowRows:
    """Windows of generated calls of the training speakers, for the blend's window temperature: features
    (normalised as scoring would), emotion labels, each window's speaker (as the fit's `groups`) and, for
    speaker-adaptive fits, its adaptation group (a call channel)."""

    X: Any
    y: Any
    speakers: Any
    adapt_groups: Any = None


def _usable_windows(rows: WindowRows | None, classes: Any, groups: Any) -> WindowRows | None:
    """The windows whose label is one of the fit's classes and whose speaker is one of its groups (the
    others could not be scored out of fold); None if none is left."""
    import numpy as np

    if rows is None or not len(rows.y):
        return None
    keep = np.isin(np.asarray(rows.y), classes) & np.isin(np.asarray(rows.speakers), np.unique(groups))
    if not keep.any():
        return None
    ag = None if rows.adapt_groups is None else np.asarray(rows.adapt_groups)[keep]
    return WindowRows(
        np.asarray(rows.X, dtype=np.float64)[keep],
        np.asarray(rows.y)[keep],
        np.asarray(rows.speakers)[keep],
        ag,
    )


def _calibration_mask(rows: Any, n: int) -> Any:
    """The rows the temperature is fitted on: all of them, or the given boolean mask (never empty)."""
    import numpy as np

    if rows is None:
        return np.ones(n, dtype=bool)
    mask = np.asarray(rows, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"calibration_rows needs one flag per row ({n}), got shape {mask.shape}")
    return mask if mask.any() else np.ones(n, dtype=bool)


def _softmax(z: Any) -> Any:
    import numpy as np

    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: Any, idx: Any, t: float) -> float:
    import numpy as np

    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float((lse - z[np.arange(len(idx)), idx]).mean())


def _fit_temperature(logits: Any, idx: Any) -> float:
    """The temperature minimising out-of-fold negative log-likelihood (bounded 1-D search)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda lt: _nll(logits, idx, float(10**lt)), bounds=(-1.5, 1.5), method="bounded")
    return float(10**res.x)


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
        "blend": lambda seed, dim: SklearnClassifier("blend", WeightedBlend(seed=seed, **p.get("blend", {}))),
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
