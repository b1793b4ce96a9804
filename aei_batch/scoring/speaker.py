"""Speaker normalisation: the transform between features and model that every scorer uses.

A batch holds many files per speaker. Z-scoring each feature with the mean and standard deviation of
*that speaker's* files in the same run removes much of what makes voices differ (pitch range, timbre,
loudness habits) and leaves more of what makes emotions differ. It uses no labels, so it is valid at
scoring time. Speakers with fewer than `min_files` files in the run fall back to the global
statistics of the training data (stored in the model card).

The speaker group of a clip comes from, in order: a manifest column (`speaker_id` by default), a regex on
the file name (`--speaker-pattern`, first group), or the RAVDESS actor in the file name. The windows of a
long recording form groups of their own, one per channel (or one for the mixed-down file): a call's channel
is one speaker's statistics, so its timeline is speaker-adapted without labels, inside the worker.

Statistics are sufficient sums (`GroupStats`: count, sum, sum of squares per feature), so they merge across
batches and workers and the driver's memory grows with the number of speaker groups (about 11 kB each for
701 features), not with the number of files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError
from aei_batch.models.stats import STD_FLOOR as _STD_FLOOR
from aei_batch.models.stats import GlobalStats

DEFAULT_MIN_SPEAKER_FILES = 10


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

    Rows whose speaker is None always use the fallback. (`SpeakerTransform` in one call, with a report.)
    """
    if min_files < 2:
        raise ConfigError(f"--min-speaker-files must be at least 2, got {min_files}")
    Z = SpeakerTransform(True, fallback, min_files).apply_own_groups(X, speakers)
    counts: dict[str, int] = {}
    for s in speakers:
        if s is not None:
            counts[str(s)] = counts.get(str(s), 0) + 1
    own = sum(1 for c in counts.values() if c >= min_files)
    fallback_files = len(speakers) - sum(c for c in counts.values() if c >= min_files)
    return Z, SpeakerNormReport(len(counts), own, fallback_files)


@dataclass
class GroupStats:
    """Sufficient statistics of one speaker group's feature vectors (mergeable)."""

    n: int
    total: np.ndarray  # (dim,) float64 sum
    squares: np.ndarray  # (dim,) float64 sum of squares

    @staticmethod
    def of(X: np.ndarray) -> GroupStats:
        X = np.asarray(X, dtype=np.float64)
        return GroupStats(len(X), X.sum(axis=0), (X * X).sum(axis=0))

    def add(self, other: GroupStats) -> None:
        self.n += other.n
        self.total += other.total
        self.squares += other.squares

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.n, 1)

    @property
    def std(self) -> np.ndarray:
        var = self.squares / max(self.n, 1) - self.mean**2
        return np.sqrt(np.maximum(var, 0.0))


@dataclass
class RunStats:
    """Per-group statistics gathered on the driver from the features the workers send back."""

    groups: dict[str, GroupStats] = field(default_factory=dict)

    def add(self, group: str | None, x: np.ndarray) -> None:
        if group is None:
            return
        g = GroupStats.of(np.asarray(x, dtype=np.float64)[None, :])
        if group in self.groups:
            self.groups[group].add(g)
        else:
            self.groups[group] = g

    def add_many(self, group: str, X: np.ndarray) -> None:
        g = GroupStats.of(X)
        if group in self.groups:
            self.groups[group].add(g)
        else:
            self.groups[group] = g

    def get(self, group: str | None) -> GroupStats | None:
        return None if group is None else self.groups.get(group)


class SpeakerTransform:
    """Features -> what the model takes.

    A per-file model takes raw features (`adaptive` False: identity). A speaker-adaptive model takes
    features z-scored with their speaker group's statistics when the group has at least `min_files`
    vectors, else with the training data's global statistics (the model card's `global_stats`)."""

    def __init__(self, adaptive: bool, fallback: GlobalStats | None, min_files: int) -> None:
        if adaptive and fallback is None:
            raise ConfigError("a speaker-adaptive model needs the training data's global statistics")
        self.adaptive = adaptive
        self.fallback = fallback
        self.min_files = min_files

    def apply(self, X: np.ndarray, stats: Sequence[GroupStats | None]) -> np.ndarray:
        """Row i of X normalised with stats[i] (or the fallback); identity for per-file models."""
        if not self.adaptive:
            return np.asarray(X, dtype=np.float32)
        assert self.fallback is not None
        X = np.asarray(X, dtype=np.float64)
        out = np.empty_like(X)
        for i, st in enumerate(stats):
            if st is not None and st.n >= self.min_files:
                std = np.maximum(st.std, _STD_FLOOR)
                std = np.where(std <= _STD_FLOOR, self.fallback.std, std)
                out[i] = (X[i] - st.mean) / std
            else:
                out[i] = (X[i] - self.fallback.mean) / self.fallback.std
        return out.astype(np.float32)

    def apply_own_groups(self, X: np.ndarray, groups: Sequence[str | None]) -> np.ndarray:
        """Normalise rows with statistics computed from these rows themselves (a recording's windows)."""
        keys = ["" if g is None else str(g) for g in groups]
        own = {
            k: GroupStats.of(np.asarray(X)[[i for i, kk in enumerate(keys) if kk == k]]) for k in set(keys)
        }
        return self.apply(X, [None if k == "" else own[k] for k in keys])


def resolve_speaker(
    uri: str, extra_json: str | None, fallback: str | None, column: str, rx: Any
) -> str | None:
    """Speaker key: manifest column, else the --speaker-pattern match, else `fallback` (the RAVDESS actor)."""
    extra = json.loads(extra_json) if extra_json else {}
    if extra.get(column) is not None:
        return str(extra[column])
    named = speaker_from_name(uri, rx)
    return named if named is not None else fallback
