"""Hyperparameter search with actor-grouped folds, fanned out as Ray tasks.

Each candidate (a model family and its parameters) is scored by the mean accuracy of an actor-grouped
cross-validation *inside the training actors* (held-out actors are never seen). Candidates run as Ray
tasks (one CPU each) sharing the feature matrix through the object store; `runner="local"` runs them
in-process, and `auto` (the CLI's default) uses Ray when RAY_ADDRESS names a cluster or Ray is already up
in this process, in-process otherwise. The result is deterministic for a given seed: same folds, same
seeds, ties broken by grid order.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from aei_batch.training.data import LabelledSet

log = logging.getLogger(__name__)

GRID: dict[str, list[dict[str, Any]]] = {
    "svc_tuned": [{"C": c, "gamma_scale": g} for c in (3.0, 10.0, 30.0) for g in (0.1, 0.3, 1.0)],
    "logreg": [{"C": c} for c in (0.003, 0.01, 0.03)],
    "lda_shrunk": [{"shrinkage": v} for v in (0.2, 0.5, 0.8)],
}


def score_candidate(
    X: np.ndarray,
    y: np.ndarray,
    actors: np.ndarray,
    family: str,
    params: dict[str, Any],
    seed: int,
    n_folds: int,
) -> float:
    """Mean fold accuracy of one candidate under actor-grouped CV."""
    from aei_batch.models.ensemble import build_models
    from aei_batch.training.cv import actor_folds

    accs = []
    for tr, te in actor_folds(actors, n_folds):
        model = build_models([family], seed, X.shape[1], {family: params})[0]
        model.fit(X[tr], y[tr])
        accs.append(float((model.predict_proba8(X[te]).argmax(1) == y[te]).mean()))
    return float(np.mean(accs))


def search(
    data: LabelledSet,
    *,
    seed: int = 0,
    runner: str = "ray",
    n_folds: int = 4,
    grid: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Best parameters per family in `grid` (default GRID), chosen by actor-grouped CV accuracy."""
    grid = grid or GRID
    n_folds = min(n_folds, len(np.unique(data.actors)))
    jobs = [(fam, p) for fam, cands in grid.items() for p in cands]
    if runner == "auto":  # Ray when there is one (RAY_ADDRESS, or started by this process); else in-process
        import os
        import sys

        ray_mod = sys.modules.get("ray")
        up = ray_mod is not None and ray_mod.is_initialized()
        runner = "ray" if os.environ.get("RAY_ADDRESS") or up else "local"
    if runner == "ray":
        import ray

        from aei_batch.runtime.ray_backend import ensure_ray

        ensure_ray()
        x_ref, y_ref, a_ref = (ray.put(a) for a in (data.X, data.y, data.actors))
        task: Any = ray.remote(num_cpus=1)(score_candidate)
        scores = ray.get([task.remote(x_ref, y_ref, a_ref, fam, p, seed, n_folds) for fam, p in jobs])
    else:
        scores = [score_candidate(data.X, data.y, data.actors, fam, p, seed, n_folds) for fam, p in jobs]
    best: dict[str, dict[str, Any]] = {}
    for fam in grid:
        cands = [(s, i) for i, ((f, _), s) in enumerate(zip(jobs, scores, strict=True)) if f == fam]
        s, i = max(cands, key=lambda t: (t[0], -t[1]))
        best[fam] = dict(jobs[i][1])
        log.info("search %s: best %s (cv accuracy %.3f)", fam, best[fam], s)
    return best
