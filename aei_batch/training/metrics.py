"""Classification metrics reported on held-out actors."""

from __future__ import annotations

from typing import Any

import numpy as np

from aei_batch.records import EMOTIONS, N_CLASSES


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_report(
    y: np.ndarray, proba: np.ndarray, actors: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy with a 95% CI, UAR, macro-F1, per-class recall, per-actor accuracy, confusion, ECE."""
    pred = proba.argmax(axis=1)
    cm = np.zeros((N_CLASSES, N_CLASSES), dtype=int)
    np.add.at(cm, (y, pred), 1)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(N_CLASSES), where=present)
    precision = np.divide(tp, predicted, out=np.zeros(N_CLASSES), where=predicted > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(N_CLASSES), where=(precision + recall) > 0
    )
    k = int(tp.sum())
    n = int(len(y))
    report: dict[str, Any] = {
        "n": n,
        "accuracy": k / n if n else 0.0,
        "accuracy_ci95": wilson_interval(k, n),
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_recall": {EMOTIONS[i]: float(recall[i]) for i in range(N_CLASSES) if present[i]},
        "confusion": cm.tolist(),
        "labels": list(EMOTIONS),
        "ece": expected_calibration_error(proba, y),
    }
    if actors is not None:
        report["per_actor_accuracy"] = {
            f"{int(a):02d}": float((pred[actors == a] == y[actors == a]).mean()) for a in np.unique(actors)
        }
    return report
