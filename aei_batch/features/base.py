"""The feature-set registry.

A feature set is a pure function `extract(y, sr) -> 1-D float32 vector` plus the facts that identify
it: name, version and parameters. Their hash goes into every model card, and scoring refuses a model
whose hash differs from the extractor's: a silently changed feature is a silently wrong prediction.

A set may also take a noise spectrum (`noise_fn` estimates one from stretches of a recording that hold
no speech; `extract(y, sr, noise=...)` then computes the features of the clip cleaned of it). That is a
property of the input, not of the features: without `noise` the values are the set's own, so the hash
does not cover it. The window scorer uses it for long recordings (scoring/windows.py, `denoise`).
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
    fn: Callable[..., np.ndarray] = field(repr=False, compare=False)
    description: str = ""
    #: (pieces of non-speech, sr) -> noise spectrum for `extract(..., noise=)`, or None: the set takes none
    noise_fn: Callable[[list[np.ndarray], int], np.ndarray | None] | None = field(
        default=None, repr=False, compare=False
    )

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

    def extract(self, y: np.ndarray, sr: int, noise: np.ndarray | None = None) -> np.ndarray:
        """The feature vector of `y`; with `noise` (from `noise_profile`), of `y` cleaned of that noise."""
        if noise is not None and self.noise_fn is None:
            raise ValueError(f"{self.id} takes no noise spectrum")
        raw = self.fn(y, sr) if noise is None else self.fn(y, sr, noise=noise)
        vec = np.asarray(raw, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"{self.id} produced shape {vec.shape}, expected ({self.dim},)")
        return vec

    __call__ = extract

    def noise_profile(self, pieces: list[np.ndarray], sr: int) -> np.ndarray | None:
        """The noise spectrum of `pieces` (stretches without speech) for `extract(..., noise=)`; None when
        the set takes none or the pieces are too short to estimate it."""
        return None if self.noise_fn is None else self.noise_fn(pieces, sr)

    def card(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "params": self.params,
            "hash": self.param_hash,
            "dim": self.dim,
        }
