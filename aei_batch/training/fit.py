"""Fitting one model on a labelled set (shared by training and cross-validation)."""

from __future__ import annotations

from typing import Any

from aei_batch.training.data import LabelledSet


def fit_model(model: Any, train: LabelledSet) -> None:
    """Fit one model; estimators that select inside their training data get the speakers as groups."""
    from aei_batch.models.tabular import SklearnClassifier

    if isinstance(model, SklearnClassifier):
        model.fit(train.X, train.y, groups=train.actors)
    else:
        model.fit(train.X, train.y)
