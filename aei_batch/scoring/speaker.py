"""Speaker-adaptive normalisation: a batch-only capability.

A batch holds many files per speaker. Z-scoring each feature with the mean and standard deviation of
*that speaker's* files in the same run removes much of what makes voices differ (pitch range, timbre,
loudness habits) and leaves more of what makes emotions differ. It uses no labels, so it is valid at
scoring time. Speakers with fewer than `min_files` files in the run fall back to the global
statistics of the training data (stored in the model card).

The speaker of a file comes from, in order: a manifest column (`speaker_id` by default), a regex on
the file name (`--speaker-pattern`, first group), or the RAVDESS actor in the file name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError

DEFAULT_MIN_SPEAKER_FILES = 10
_STD_FLOOR = 1e-6


@dataclass(frozen=True)
class GlobalStats:
    """Feature mean and std of the training data: the fallback for speakers with too few files."""

    mean: np.ndarray
    std: np.ndarray

    @staticmethod
    def fit(X: np.ndarray) -> GlobalStats:
        return GlobalStats(X.mean(axis=0), np.maximum(X.std(axis=0), _STD_FLOOR))

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @staticmethod
    def from_json(d: dict[str, Any]) -> GlobalStats:
        return GlobalStats(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


@dataclass(frozen=True)
class SpeakerNormReport:
    """What normalisation did in one run: which speakers had their own statistics, which fell back."""

    speakers: int
    own_stats: int
    fallback_files: int


def compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    """Validate a `--speaker-pattern` regex (it must have one capturing group)."""
    if not pattern:
        return None
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--speaker-pattern {pattern!r} is not a valid regex: {exc}") from None
    if rx.groups < 1:
        raise ConfigError(
            f"--speaker-pattern {pattern!r} has no capturing group",
            hint=r"wrap the speaker part in parentheses, e.g. '^(spk\d+)_'",
        )
    return rx


def speaker_from_name(uri: str, rx: re.Pattern[str] | None) -> str | None:
    """The speaker key a filename regex extracts from the file's base name, or None."""
    if rx is None:
        return None
    m = rx.search(uri.rstrip("/").rsplit("/", 1)[-1])
    return m.group(1) if m else None


def normalise(
    X: np.ndarray,
    speakers: Sequence[str | None],
    fallback: GlobalStats,
    min_files: int = DEFAULT_MIN_SPEAKER_FILES,
) -> tuple[np.ndarray, SpeakerNormReport]:
    """Z-score each row with its speaker's statistics (from these rows), or `fallback` under `min_files`.

    Rows whose speaker is None always use the fallback.
    """
    if min_files < 2:
        raise ConfigError(f"--min-speaker-files must be at least 2, got {min_files}")
    X = np.asarray(X, dtype=np.float64)
    out = (X - fallback.mean) / fallback.std
    keys = np.array(["" if s is None else str(s) for s in speakers], dtype=object)
    own = 0
    for key in np.unique(keys):
        if key == "":
            continue
        rows = keys == key
        if rows.sum() < min_files:
            continue
        mean = X[rows].mean(axis=0)
        std = np.maximum(X[rows].std(axis=0), _STD_FLOOR)
        # a feature constant within the speaker keeps the global scale rather than exploding
        std = np.where(std <= _STD_FLOOR, fallback.std, std)
        out[rows] = (X[rows] - mean) / std
        own += 1
    n_speakers = len([k for k in np.unique(keys) if k != ""])
    fallback_files = int(
        len(keys)
        - sum(int((keys == k).sum()) for k in np.unique(keys) if k != "" and (keys == k).sum() >= min_files)
    )
    return out.astype(np.float32), SpeakerNormReport(n_speakers, own, fallback_files)
