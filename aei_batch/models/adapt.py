"""Transductive per-group adaptation: move the class means towards one speaker group's own files.

Speaker-adaptive mode z-scores each speaker group (a speaker, a call channel) with its own statistics,
which removes the group's offset and scale but not how its emotions sit relative to each other. This
module adds one step of MAP adaptation of the class means (Gauvain & Lee, 1994; the relevance-factor
update of GMM-UBM speaker adaptation) in a discriminant space fitted on the training rows:

1. `AdaptationSpace.fit`: standardise, then shrunk LDA (shrinkage 0.5, as the blend's `lda_shrunk`
   candidate); the projection whitens the shared within-class covariance, so classes are unit spheres
   around their training means M_k (K classes, K - 1 dimensions).
2. `stats(Z)`: a group's sufficient statistics, additive over its rows: the class posteriors r_ik of
   each row under the training means (equal priors), n_k = sum_i r_ik and S_k = sum_i r_ik z_i. Rows can
   be streamed in any order and chunks summed: the driver never holds a group's rows at once.
3. `means(stats)`: M'_k = (tau M_k + S_k) / (tau + n_k). A class the group barely shows keeps its
   training mean; `tau` (the relevance factor) is chosen by the blend's inner speaker-grouped CV,
   None (no adaptation) among the choices.
4. `delta(Z, M')`: the change of each row's class log-likelihood, d(z, M') - d(z, M), added to the
   model's log-probabilities before its temperature.

The class priors are not adapted: a group's predictions are never pushed towards any class mix; only
where the group's files sit in the discriminant space moves the means. One EM step (posteriors under
the training means) is what keeps the statistics one streaming pass; more steps were measured and did
not do better (docs/MODELS.md, round 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: relevance factors the blend's inner CV chooses from; None = no adaptation
TAUS: tuple[float | None, ...] = (None, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)


@dataclass
class AdaptationSpace:
    """A fitted discriminant space and the training class means in it (plain arrays: stored by skops)."""

    center: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    proj: np.ndarray  # (d, K-1)
    means: np.ndarray  # (K, K-1)

    @classmethod
    def fit(cls, X: np.ndarray, idx: np.ndarray, n_classes: int) -> AdaptationSpace:
        """`idx`: class indices 0..n_classes-1 of the rows of X."""
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        X = np.asarray(X, dtype=np.float64)
        center = X.mean(axis=0)
        scale = X.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        Xs = (X - center) / scale
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.5).fit(Xs, idx)
        dims = max(1, min(n_classes - 1, X.shape[1]))
        proj = np.asarray(lda.scalings_[:, :dims], dtype=np.float64)
        Z = Xs @ proj
        means = np.zeros((n_classes, dims))
        for k in range(n_classes):
            if (idx == k).any():
                means[k] = Z[idx == k].mean(axis=0)
        return cls(center, scale, proj, means)

    def project(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.center) / self.scale) @ self.proj  # type: ignore[no-any-return]

    def stats(self, X: np.ndarray) -> np.ndarray:
        """A group's sufficient statistics from some of its rows: (K, 1 + dims), [n_k | S_k]; add chunks."""
        Z = self.project(X)
        r = _posteriors(_loglik(Z, self.means))
        return np.hstack([r.sum(axis=0)[:, None], r.T @ Z])

    def adapted_means(self, stats: np.ndarray, tau: float) -> np.ndarray:
        n, S = stats[:, 0], stats[:, 1:]
        return (tau * self.means + S) / (tau + n)[:, None]  # type: ignore[no-any-return]

    def delta(self, X: np.ndarray, adapted: np.ndarray) -> np.ndarray:
        """Change of each row's class log-likelihood from the training means to `adapted`: (n, K)."""
        Z = self.project(X)
        return _loglik(Z, adapted) - _loglik(Z, self.means)


def _loglik(Z: np.ndarray, M: np.ndarray) -> np.ndarray:
    return -0.5 * ((Z[:, None, :] - M[None, :, :]) ** 2).sum(axis=-1)  # type: ignore[no-any-return]


def _posteriors(ll: np.ndarray) -> np.ndarray:
    e = np.exp(ll - ll.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def group_deltas(
    space: AdaptationSpace, X: np.ndarray, groups: np.ndarray, taus: tuple[float | None, ...] = TAUS
) -> list[np.ndarray]:
    """For each tau, every row's delta with its own group adapted on all of that group's rows here."""
    out = [np.zeros((len(X), len(space.means))) for _ in taus]
    for g in np.unique(groups):
        m = groups == g
        st = space.stats(X[m])
        for t, tau in enumerate(taus):
            if tau is not None:
                out[t][m] = space.delta(X[m], space.adapted_means(st, tau))
    return out


def per_row_stats(
    stats_of: Any, X: np.ndarray, groups: list[str | None], min_rows: int
) -> list[np.ndarray | None]:
    """Each row's group statistics (`stats_of(rows)`), computed from these rows; None for rows without a
    group or in a group of fewer than `min_rows` (those are normalised with global statistics and left
    as they are)."""
    out: list[np.ndarray | None] = [None] * len(groups)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        if g is not None:
            members.setdefault(str(g), []).append(i)
    for rows in members.values():
        if len(rows) >= min_rows:
            st = stats_of(np.asarray(X)[rows])
            for i in rows:
                out[i] = st
    return out


def predict_adapted(
    classifier: Any, Z: np.ndarray, groups: list[str | None], min_rows: int, windows: bool = False
) -> np.ndarray:
    """A classifier's 8-class probabilities of normalised rows, each speaker group of at least `min_rows`
    rows adapted on its rows here (classifiers that do not adapt predict as usual). `windows`: the rows
    are windows of long recordings (the classifier's window temperature, if it has one)."""
    kw: dict[str, Any] = {}
    if windows and getattr(classifier, "window_temperature", None) is not None:
        kw["windows"] = np.ones(len(Z), dtype=bool)
    if getattr(classifier, "adapts", False):
        kw["adapt"] = per_row_stats(classifier.adaptation_stats, Z, groups, min_rows)
    return classifier.predict_proba8(Z, **kw)  # type: ignore[no-any-return]
