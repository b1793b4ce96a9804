"""Labelled data: RAVDESS-named files -> feature matrix, class ids and actors."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError, InputNotFoundError
from aei_batch.features.augment import VARIANTS
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
    #: per row, which copy of its file it is (index into AUGMENT_VARIANTS; 0 = the file itself); None = all 0
    variants: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> LabelledSet:
        return LabelledSet(
            self.X[mask],
            self.y[mask],
            self.actors[mask],
            [u for u, m in zip(self.uris, mask, strict=True) if m],
            dict(self.skipped),
            None if self.variants is None else self.variants[mask],
        )

    @property
    def variant_ids(self) -> np.ndarray:
        return np.zeros(len(self.y), dtype=np.int64) if self.variants is None else self.variants

    def originals(self) -> LabelledSet:
        """The rows of the files themselves (no augmented copies)."""
        return self if self.variants is None else self.subset(self.variants == 0)


#: the copies of each training file that augmentation adds (features/augment.py), in row order
AUGMENT_VARIANTS = VARIANTS


def _feature_rows(
    refs: list[FileRef],
    feature_set: str,
    *,
    runner: str,
    batch_size: int,
    workers: int | None,
    progress: bool,
    desc: str,
    **stage: Any,
) -> Iterator[dict[str, Any]]:
    """`FeatureTableStage` over `refs` on `runner` (the featurisation of training and evaluation): one row
    per file, with its features or its error, as the batches come back (not in input order)."""
    import sys

    from tqdm import tqdm

    from aei_batch.runtime.runners import run_stage
    from aei_batch.scoring.rows import RunContext, refs_to_table
    from aei_batch.scoring.stage import FeatureTableStage

    ctx = RunContext.new(model_dir="", max_duration_s=600.0)
    with tqdm(total=len(refs), unit="file", desc=desc, file=sys.stderr, disable=not progress) as bar:
        for out in run_stage(
            FeatureTableStage,
            {"ctx": ctx, "feature_set_name": feature_set, **stage},
            refs_to_table(refs),
            runner=runner,
            batch_size=batch_size,
            workers=workers,
        ):
            for row in out.to_pylist():
                bar.update(1)
                yield row


def featurise_copy(
    base: LabelledSet,
    feature_set: str,
    *,
    copy: str = "telephone",
    runner: str = "local",
    workers: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> LabelledSet:
    """A copy of each of `base`'s files (features/augment.py `EVAL_COPIES`: `telephone`, 8 kHz, 300-3,400 Hz,
    mu-law, featurised as scoring an 8 kHz recording would be; `noise`, under a -65 dBFS noise floor), by
    the featurisation stage on `runner` (the copy is made in the decoder child from the one decode); files
    that cannot be decoded are left out."""
    refs = [next(iter(storage.list_inputs(u))) for u in dict.fromkeys(base.uris)]
    rows = _feature_rows(
        refs,
        feature_set,
        runner=runner,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        desc=copy,
        copy=copy,
    )
    got = {row["uri"]: row["features"] for row in rows if row["features"] is not None}
    keep = np.array([u in got for u in base.uris], dtype=bool)
    out_set = base.subset(keep)
    dim = base.X.shape[1] if base.X.ndim == 2 else 0
    out_set.X = (
        np.asarray([got[u] for u in out_set.uris], dtype=np.float32)
        if keep.any()
        else np.zeros((0, dim), np.float32)
    )
    return out_set


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
    augment_seed: int | None = None,
) -> LabelledSet:
    """Decode and featurise every labelled file under `source` (fanned out like scoring, on the same
    runners). With `augment_seed`, each file also contributes its augmented copies from the same decode
    (a telephone copy, two random 2-4 s crops, a crop of the telephone copy and the file at 0.9x and 1.1x
    speed: models trained on these serve clips, windows of long recordings and call-centre audio, and
    more voices than the training speakers', docs/MODELS.md): the rows of the
    files come first, then those of each copy in AUGMENT_VARIANTS order; deterministic for a seed."""
    refs, unlabelled = labelled_refs(source)
    X, y, actors, uris, more = [], [], [], [], []
    errors = 0
    for row in _feature_rows(
        refs,
        feature_set,
        runner=runner,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        desc="features",
        augment_seed=augment_seed,
    ):
        if row["features"] is None:
            errors += 1
            log.warning("skipping %s: %s %s", row["uri"], row["error_code"], row["error_message"])
            continue
        lab = parse_ravdess_name(row["uri"])
        X.append(row["features"])
        more.append(row["augmented"])
        y.append(EMOTIONS.index(str(lab.emotion)))
        actors.append(lab.actor)
        uris.append(row["uri"])
    if not X:
        raise ConfigError(f"none of the {len(refs)} labelled files under {source} could be featurised")
    order = np.argsort(np.array(uris))  # runner output order is not guaranteed; make training deterministic
    base = LabelledSet(
        X=np.asarray(X, dtype=np.float32)[order],
        y=np.asarray(y, dtype=np.int64)[order],
        actors=np.asarray(actors, dtype=np.int64)[order],
        uris=[uris[i] for i in order],
        skipped={"unlabelled": unlabelled, "unreadable": errors},
    )
    if augment_seed is None:
        return base
    copies = np.asarray(more, dtype=np.float32)[order]  # (files, copies, dim)
    n_var = len(AUGMENT_VARIANTS) - 1
    return LabelledSet(
        np.concatenate([base.X, *(copies[:, v] for v in range(n_var))]),
        np.tile(base.y, n_var + 1),
        np.tile(base.actors, n_var + 1),
        base.uris * (n_var + 1),
        dict(base.skipped),
        np.repeat(np.arange(n_var + 1, dtype=np.int64), len(base.y)),
    )
