"""Fitting one model on a labelled set (shared by training and cross-validation)."""

from __future__ import annotations

from typing import Any

from aei_batch.training.data import LabelledSet


def fit_model(model: Any, train: LabelledSet) -> None:
    """Fit one model; estimators that select inside their training data get the speakers as groups, and
    those that fit a temperature the rows of the original files (augmented copies left out of it)."""
    from aei_batch.models.tabular import SklearnClassifier

    if isinstance(model, SklearnClassifier):
        originals = None if train.variants is None else train.variant_ids == 0
        model.fit(train.X, train.y, groups=train.actors, calibration_rows=originals)
    else:
        model.fit(train.X, train.y)
