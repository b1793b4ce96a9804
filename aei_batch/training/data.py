"""Labelled data: RAVDESS-named files -> feature matrix, class ids and actors."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from aei_batch.errors import ConfigError, InputNotFoundError
from aei_batch.io import storage
from aei_batch.records import EMOTIONS, FileRef, parse_ravdess_name

log = logging.getLogger(__name__)


@dataclass
class LabelledSet:
    """Features of labelled files. `y` holds class ids into EMOTIONS; `actors` the speaker of each row."""

    X: np.ndarray
    y: np.ndarray
    actors: np.ndarray
    uris: list[str]
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> LabelledSet:
        return LabelledSet(
            self.X[mask],
            self.y[mask],
            self.actors[mask],
            [u for u, m in zip(self.uris, mask, strict=True) if m],
            dict(self.skipped),
        )


def labelled_refs(source: str, extensions: Iterable[str] | None = None) -> tuple[list[FileRef], int]:
    """RAVDESS-named files under `source` with an emotion and actor; also returns how many were unlabelled."""
    exts = extensions or storage.AUDIO_EXTENSIONS
    refs, unlabelled = [], 0
    for ref in storage.list_inputs(source, extensions=exts):
        lab = parse_ravdess_name(ref.uri)
        if lab.emotion is None or lab.actor is None:
            unlabelled += 1
            continue
        refs.append(ref)
    if not refs:
        raise InputNotFoundError(
            f"no RAVDESS-named labelled audio under {source} ({unlabelled} files without labels)",
            hint="training needs names like 03-01-06-01-02-01-12.wav (emotion = 3rd field, actor = 7th)",
        )
    return refs, unlabelled


def featurise(
    source: str,
    feature_set: str,
    *,
    runner: str = "ray",
    batch_size: int = 16,
    workers: int | None = None,
    progress: bool = True,
) -> LabelledSet:
    """Decode and featurise every labelled file under `source` (fanned out like scoring)."""
    import sys

    from tqdm import tqdm

    from aei_batch.runtime.runners import run_stage
    from aei_batch.scoring.rows import RunContext, refs_to_table
    from aei_batch.scoring.stage import FeatureTableStage

    refs, unlabelled = labelled_refs(source)
    ctx = RunContext.new(model_dir="", max_duration_s=600.0)
    X, y, actors, uris = [], [], [], []
    errors = 0
    bar = tqdm(total=len(refs), unit="file", desc="features", file=sys.stderr, disable=not progress)
    for out in run_stage(
        FeatureTableStage,
        {"ctx": ctx, "feature_set_name": feature_set},
        refs_to_table(refs),
        runner=runner,
        batch_size=batch_size,
        workers=workers,
    ):
        for row in out.to_pylist():
            bar.update(1)
            if row["features"] is None:
                errors += 1
                log.warning("skipping %s: %s %s", row["uri"], row["error_code"], row["error_message"])
                continue
            lab = parse_ravdess_name(row["uri"])
            X.append(row["features"])
            y.append(EMOTIONS.index(str(lab.emotion)))
            actors.append(lab.actor)
            uris.append(row["uri"])
    bar.close()
    if not X:
        raise ConfigError(f"none of the {len(refs)} labelled files under {source} could be featurised")
    order = np.argsort(np.array(uris))  # runner output order is not guaranteed; make training deterministic
    return LabelledSet(
        X=np.asarray(X, dtype=np.float32)[order],
        y=np.asarray(y, dtype=np.int64)[order],
        actors=np.asarray(actors, dtype=np.int64)[order],
        uris=[uris[i] for i in order],
        skipped={"unlabelled": unlabelled, "unreadable": errors},
    )
