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


def augment_on(opts: TrainOptions) -> bool:
    """Whether training adds telephone copies, random crops and speed copies (`augment`; None = on for
    `voice_audio`)."""
    flag = getattr(opts, "augment", None)
    return bool(flag) if flag is not None else opts.feature_set.partition("@")[0] == "voice_audio"


def load_data(opts: TrainOptions) -> LabelledSet:
    """Featurise the labelled files (through the feature cache when `opts.cache_dir` is set), and with
    augmentation on, their telephone copies and crops from the same decode (`training.data.featurise`)."""
    from aei_batch.training.cv import cached_featurise

    return cached_featurise(
        opts.data,
        opts.feature_set,
        cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
        runner=opts.runner,
        progress=opts.progress,
        augment_seed=opts.seed if augment_on(opts) else None,
    )


def speakers_of(data: LabelledSet) -> list[str]:
    """Speaker keys of labelled RAVDESS rows: the same `actor-NN` keys scoring derives from file names."""
    from aei_batch.training.cv import speaker_keys

    return speaker_keys(data.actors)


def group_keys(data: LabelledSet) -> list[str]:
    """Each training row's speaker group: its speaker, or (speaker, kind of copy) for augmented copies."""
    return [f"{s}/{v}" if v else s for s, v in zip(speakers_of(data), data.variant_ids, strict=True)]


def adapt(
    opts: TrainOptions, train: LabelledSet, test: LabelledSet | None
) -> tuple[LabelledSet, LabelledSet | None, dict[str, Any]]:
    """In speaker-adaptive mode, z-score train and held-out rows per speaker; return the card options.

    Held-out speakers are normalised with their own (unlabelled) files, exactly as scoring will. With
    augmented copies, each (speaker, kind of copy) is its own group: a speaker's telephone copies are
    z-scored with their own statistics, as a telephone batch of that speaker would be at scoring time.
    Held-out rows are the files themselves only.
    """
    if test is not None:
        test = test.originals()
    aug = _augmentation_note(train)
    if not opts.speaker_adaptive:
        return train, test, {"speaker_adaptive": False, **aug}
    from aei_batch.scoring.speaker import GlobalStats, normalise

    g = GlobalStats.fit(train.X)
    Xtr, rep = normalise(train.X, group_keys(train), g, opts.min_speaker_files)
    log.info(
        "speaker-normalised training data: %d speaker groups, %d with own statistics",
        rep.speakers,
        rep.own_stats,
    )
    train_n = LabelledSet(Xtr, train.y, train.actors, train.uris, dict(train.skipped), train.variants)
    test_n = None
    if test is not None:
        Xte, _ = normalise(test.X, speakers_of(test), g, opts.min_speaker_files)
        test_n = LabelledSet(Xte, test.y, test.actors, test.uris, dict(test.skipped))
    options = {
        **aug,
        "speaker_adaptive": True,
        "min_speaker_files": opts.min_speaker_files,
        "global_stats": g.to_json(),
    }
    return train_n, test_n, options


def _augmentation_note(train: LabelledSet) -> dict[str, Any]:
    """What the card says about the training copies (empty without augmentation)."""
    if train.variants is None:
        return {}
    from aei_batch.features.augment import SPEEDS
    from aei_batch.training.data import AUGMENT_VARIANTS

    counts = np.bincount(train.variant_ids, minlength=len(AUGMENT_VARIANTS))
    return {
        "augmentation": {
            "copies": {
                f"{i}:{n}": int(c) for i, (n, c) in enumerate(zip(AUGMENT_VARIANTS, counts, strict=True))
            },
            "telephone": "8 kHz, 300-3400 Hz band-pass, 8-bit mu-law (features/augment.py)",
            "crops_s": [2.0, 4.0],
            "speeds": list(SPEEDS),
            "weak_on": "measured in docs/MODELS.md (nested CV, voice_audio v2): 3 s windows of calls "
            "67 % (mono 16 kHz) and 66 % (stereo 8 kHz), telephone copies 4.7 points under full band "
            "(speaker-adaptive); a -65 dBFS noise "
            "floor under studio clips costs 8 (speaker-adaptive) to 14 (per file) points; acted RAVDESS "
            "speech only",
        }
    }


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
