"""Labelled data: RAVDESS-named files -> feature matrix, class ids and actors."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


#: the copies `featurise_augmented` makes of each training file (features/augment.py), in row order
AUGMENT_VARIANTS = ("file", "telephone", "crop", "crop", "telephone_crop")


def _augment_job(args: tuple[str, str, int]) -> np.ndarray | None:
    """Features of the augmented copies (variants 1..) of one file; None when it cannot be decoded."""
    from aei_batch.decode.audio import decode_audio
    from aei_batch.errors import FileError
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import random_crop, telephone

    uri, feature_set, seed = args
    fs = get_feature_set(feature_set)
    sr = int(fs.params.get("sr", 22050))
    try:
        y = decode_audio(storage.read_bytes(uri), uri, sr=sr).y
    except FileError:
        return None
    rng = np.random.default_rng(seed)
    tel = telephone(y, sr)
    copies = [tel, random_crop(y, sr, rng), random_crop(y, sr, rng), random_crop(tel, sr, rng)]
    return np.stack([fs.extract(c, sr) for c in copies])


def featurise_augmented(
    base: LabelledSet, feature_set: str, *, seed: int = 0, workers: int | None = None, progress: bool = True
) -> LabelledSet:
    """`base` (features of the files) plus, per file, a telephone copy (8 kHz, 300-3,400 Hz, mu-law),
    two random 2-4 s crops and a crop of the telephone copy: models trained on these serve clips,
    windows of long recordings and call-centre audio (docs/MODELS.md). Deterministic for a seed."""
    jobs = [(u, feature_set, seed * 100_003 + i) for i, u in enumerate(base.uris)]
    res = _run_jobs(_augment_job, jobs, "augment", workers, progress)
    keep = [i for i, r in enumerate(res) if r is not None]
    n_var = len(AUGMENT_VARIANTS) - 1
    X = [base.X] + [np.stack([res[i][v] for i in keep]) for v in range(n_var)]  # type: ignore[index]
    rows = np.array(keep, dtype=np.int64)
    return LabelledSet(
        np.concatenate(X).astype(np.float32),
        np.concatenate([base.y] + [base.y[rows]] * n_var),
        np.concatenate([base.actors] + [base.actors[rows]] * n_var),
        base.uris + [base.uris[i] for i in keep] * n_var,
        dict(base.skipped),
        np.concatenate(
            [np.zeros(len(base.y), dtype=np.int64)] + [np.full(len(rows), v + 1) for v in range(n_var)]
        ),
    )


def _run_jobs(fn: Any, jobs: list[Any], desc: str, workers: int | None, progress: bool) -> list[Any]:
    """`fn` over `jobs` in order: in this process for small lists, else in a pool of spawned processes."""
    import multiprocessing as mp
    import os
    import sys

    from tqdm import tqdm

    n = workers or max(1, min(len(os.sched_getaffinity(0)), 8))
    bar = {"total": len(jobs), "unit": "file", "desc": desc, "file": sys.stderr, "disable": not progress}
    if n == 1 or len(jobs) < 32:  # small corpora: no process start-up
        return [fn(j) for j in tqdm(jobs, **bar)]  # type: ignore[arg-type]
    with mp.get_context("spawn").Pool(n) as pool:
        return list(tqdm(pool.imap(fn, jobs, chunksize=4), **bar))  # type: ignore[arg-type]


def _telephone_job(args: tuple[str, str]) -> np.ndarray | None:
    """Features of one file's telephone copy; None when it cannot be decoded."""
    from aei_batch.decode.audio import decode_audio
    from aei_batch.errors import FileError
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import telephone

    uri, feature_set = args
    fs = get_feature_set(feature_set)
    sr = int(fs.params.get("sr", 22050))
    try:
        y = decode_audio(storage.read_bytes(uri), uri, sr=sr).y
    except FileError:
        return None
    return fs.extract(telephone(y, sr), sr)  # type: ignore[no-any-return]


def featurise_telephone(
    base: LabelledSet, feature_set: str, *, workers: int | None = None, progress: bool = False
) -> LabelledSet:
    """The telephone copies (8 kHz, 300-3,400 Hz, mu-law; features/augment.py) of `base`'s files, featurised
    as scoring an 8 kHz recording would be; files that cannot be decoded are left out."""
    res = _run_jobs(_telephone_job, [(u, feature_set) for u in base.uris], "telephone", workers, progress)
    keep = np.array([r is not None for r in res], dtype=bool)
    dim = next((len(r) for r in res if r is not None), 0)
    X = np.stack([r for r in res if r is not None]) if keep.any() else np.zeros((0, dim), np.float32)
    out = base.subset(keep)
    out.X = X.astype(np.float32)
    return out


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
