"""Late fusion of the audio and video predictions of one file.

Each modality gives 8 probabilities (EMOTIONS order). The fused distribution is a weighted mean of
log-probabilities, renormalised (a weighted geometric mean, "product of experts"):

    log p(c)  =  w_a * log pa(c)  +  (1 - w_a) * log pv(c)  - log Z

`method="prob"` gives the weighted arithmetic mean instead. Probabilities are floored at `EPS` before
the log, because tabular audio models give exactly 0 to classes they never saw and one modality's
zero must not veto the other's evidence.

The audio weight `w_a` is fitted on held-out actors when a fit is available (`fit_audio_weight`: the
grid value with the lowest mean negative log-likelihood of the true emotion), stored in the video
model's card under ``options.fusion``; without a fit the weights are equal (0.5 / 0.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

EPS = 1e-4
METHODS = ("logprob", "prob")
DEFAULT_AUDIO_WEIGHT = 0.5
WEIGHT_GRID = tuple(round(0.05 * k, 2) for k in range(21))


@dataclass(frozen=True)
class FusionSpec:
    """How to fuse: method, audio weight (video weight = 1 - audio weight), and where the weight came from."""

    method: str = "logprob"
    audio_weight: float = DEFAULT_AUDIO_WEIGHT
    source: str = "default: equal weights (no fit available)"
    n_files: int = 0
    heldout_nll: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown fusion method {self.method!r}; use one of {METHODS}")
        if not 0.0 <= self.audio_weight <= 1.0:
            raise ValueError(f"audio weight must be in [0, 1], got {self.audio_weight}")

    @property
    def video_weight(self) -> float:
        return 1.0 - self.audio_weight

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FusionSpec:
        if not d:
            return cls()
        keys = {"method", "audio_weight", "source", "n_files", "heldout_nll"}
        return cls(**{k: v for k, v in d.items() if k in keys})


def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, None)
    return p / p.sum(axis=-1, keepdims=True)


def fuse(
    audio_p: np.ndarray,
    video_p: np.ndarray,
    audio_weight: float = DEFAULT_AUDIO_WEIGHT,
    method: str = "logprob",
) -> np.ndarray:
    """Fuse (..., 8) audio and video probabilities into (..., 8) probabilities that sum to 1."""
    pa_, pv = _normalise(audio_p), _normalise(video_p)
    if method == "prob":
        out = audio_weight * pa_ + (1.0 - audio_weight) * pv
    elif method == "logprob":
        logits = audio_weight * np.log(pa_) + (1.0 - audio_weight) * np.log(pv)
        logits -= logits.max(axis=-1, keepdims=True)
        out = np.exp(logits)
    else:
        raise ValueError(f"unknown fusion method {method!r}; use one of {METHODS}")
    return out / out.sum(axis=-1, keepdims=True)


def mean_nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes `y` (class ids) under probabilities `p`."""
    p = _normalise(p)
    return float(-np.mean(np.log(p[np.arange(len(y)), np.asarray(y, dtype=int)])))


def fit_audio_weight(
    audio_p: np.ndarray,
    video_p: np.ndarray,
    y: np.ndarray,
    method: str = "logprob",
    source: str = "fitted on held-out actors",
) -> FusionSpec:
    """Pick the grid audio weight with the lowest held-out NLL (ties: the one closest to 0.5)."""
    if len(y) == 0:
        return FusionSpec(method=method)
    scores = {w: mean_nll(fuse(audio_p, video_p, w, method), y) for w in WEIGHT_GRID}
    best = min(scores, key=lambda w: (round(scores[w], 9), abs(w - 0.5)))
    summary = {
        "audio_only": scores[1.0],
        "video_only": scores[0.0],
        "equal": scores[0.5],
        "fitted": scores[best],
    }
    return FusionSpec(
        method=method,
        audio_weight=float(best),
        source=source,
        n_files=int(len(y)),
        heldout_nll={k: round(v, 4) for k, v in summary.items()},
    )


def aggregate_frames(frame_p: np.ndarray) -> np.ndarray:
    """Per-file video probabilities: the mean of the frames' probabilities (each frame counts once)."""
    if len(frame_p) == 0:
        raise ValueError("no frames to aggregate")
    p = np.asarray(frame_p, dtype=np.float64).mean(axis=0)
    return p / p.sum()
