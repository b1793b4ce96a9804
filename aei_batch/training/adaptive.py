"""Training-side pieces of speaker-adaptive mode and hyperparameter search, used by `run_train`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aei_batch.training.data import LabelledSet

if TYPE_CHECKING:
    from aei_batch.config import TrainOptions

log = logging.getLogger(__name__)


def load_data(opts: TrainOptions) -> LabelledSet:
    """Featurise the labelled files (through the feature cache when `opts.cache_dir` is set)."""
    from aei_batch.training.cv import cached_featurise

    return cached_featurise(
        opts.data,
        opts.feature_set,
        cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
        runner=opts.runner,
        progress=opts.progress,
    )


def speakers_of(data: LabelledSet) -> list[str]:
    """Speaker keys of labelled RAVDESS rows: the same `actor-NN` keys scoring derives from file names."""
    from aei_batch.training.cv import speaker_keys

    return speaker_keys(data.actors)


def adapt(
    opts: TrainOptions, train: LabelledSet, test: LabelledSet | None
) -> tuple[LabelledSet, LabelledSet | None, dict[str, Any]]:
    """In speaker-adaptive mode, z-score train and held-out rows per speaker; return the card options.

    Held-out speakers are normalised with their own (unlabelled) files, exactly as scoring will.
    """
    if not opts.speaker_adaptive:
        return train, test, {"speaker_adaptive": False}
    from aei_batch.scoring.speaker import GlobalStats, normalise

    g = GlobalStats.fit(train.X)
    Xtr, rep = normalise(train.X, speakers_of(train), g, opts.min_speaker_files)
    log.info(
        "speaker-normalised training data: %d speakers, %d with own statistics", rep.speakers, rep.own_stats
    )
    train_n = LabelledSet(Xtr, train.y, train.actors, train.uris, dict(train.skipped))
    test_n = None
    if test is not None:
        Xte, _ = normalise(test.X, speakers_of(test), g, opts.min_speaker_files)
        test_n = LabelledSet(Xte, test.y, test.actors, test.uris, dict(test.skipped))
    options = {
        "speaker_adaptive": True,
        "min_speaker_files": opts.min_speaker_files,
        "global_stats": g.to_json(),
    }
    return train_n, test_n, options


def searched_params(opts: TrainOptions, train: LabelledSet) -> dict[str, dict[str, Any]]:
    """Hyperparameters from an actor-grouped search on the training actors (empty without --search)."""
    if not opts.search:
        return {}
    from aei_batch.training.search import search

    return search(train, seed=opts.seed, runner=opts.runner)


def train_speakers_ok(data: LabelledSet, min_files: int) -> bool:
    """Whether every training speaker has enough files for its own statistics."""
    _, counts = np.unique(data.actors, return_counts=True)
    return bool((counts >= min_files).all())
