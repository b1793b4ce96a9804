"""Fitting one model on a labelled set (shared by training and cross-validation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aei_batch.training.data import LabelledSet


def fit_model(
    model: Any, train: LabelledSet, adapt_groups: list[str] | None = None, window_rows: Any = None
) -> None:
    """Fit one model; estimators that select inside their training data get the speakers as groups, and
    those that fit a temperature the rows of the original files (augmented copies left out of it). In
    speaker-adaptive mode `adapt_groups` (each row's normalisation group: training/adaptive.py group_keys)
    reaches estimators that adapt to each group (models/adapt.py), and `window_rows` (windows of generated
    calls of the training actors: models/ensemble.py `WindowRows`) those that fit a window temperature.

    scikit-learn models fit with the numeric libraries' thread pools limited to AEI_FIT_THREADS threads
    (default 1): the default blend's LDA fits on 935 features took 0.85 s on one thread and 2.5-7 s with
    OpenBLAS's two threads on a loaded two-core machine, whose threads spin waiting for a core
    (docs/PERFORMANCE.md).
    Set AEI_FIT_THREADS=0 for the libraries' own default."""
    import os

    from threadpoolctl import threadpool_limits

    from aei_batch.models.tabular import SklearnClassifier

    if not isinstance(model, SklearnClassifier):  # Keras: its own thread pools
        model.fit(train.X, train.y)
        return
    threads = int(os.environ.get("AEI_FIT_THREADS", "1"))
    originals = None if train.variants is None else train.variant_ids == 0
    groups = None if adapt_groups is None else np.asarray(adapt_groups)
    with threadpool_limits(limits=threads if threads > 0 else None):
        model.fit(
            train.X,
            train.y,
            groups=train.actors,
            calibration_rows=originals,
            adapt_groups=groups,
            window_rows=window_rows,
        )
