"""The training data's feature statistics a speaker-adaptive model carries in its card."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STD_FLOOR = 1e-6


@dataclass(frozen=True)
class GlobalStats:
    """Feature mean and std of the training data: the fallback for speakers with too few files."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def fit(X: np.ndarray) -> GlobalStats:
        return GlobalStats(X.mean(axis=0), np.maximum(X.std(axis=0), STD_FLOOR))

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> GlobalStats:
        return GlobalStats(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))
