"""The feature-set registry.

A feature set is a pure function `extract(y, sr) -> 1-D float32 vector` plus the facts that identify
it: name, version and parameters. Their hash goes into every model card, and scoring refuses a model
whose hash differs from the extractor's: a silently changed feature is a silently wrong prediction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned audio feature extractor."""

    name: str
    version: int
    params: dict[str, Any]
    names: tuple[str, ...]
    fn: Callable[[np.ndarray, int], np.ndarray] = field(repr=False, compare=False)
    description: str = ""

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def param_hash(self) -> str:
        blob = json.dumps(
            {"name": self.name, "version": self.version, "params": self.params, "names": self.names},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"

    def extract(self, y: np.ndarray, sr: int) -> np.ndarray:
        vec = np.asarray(self.fn(y, sr), dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"{self.id} produced shape {vec.shape}, expected ({self.dim},)")
        return vec

    def card(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "params": self.params,
            "hash": self.param_hash,
            "dim": self.dim,
        }
