"""Actor-grouped cross-validation and the feature cache it runs on.

Folds hold out whole actors: every actor is tested exactly once, and no actor's files are ever on
both sides of a split. Actors are dealt to folds round-robin in sorted order (01, 06, 11, 16 in fold
1 of 5 for actors 01-20), which mixes male (odd) and female (even) actors in every fold.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError
from aei_batch.records import N_CLASSES
from aei_batch.training.data import LabelledSet

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("~/.cache/aei_batch/features")


def actor_folds(actors: np.ndarray, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, test_idx) per fold; each fold's test set is a group of whole actors."""
    uniq = np.unique(actors)
    if n_folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {n_folds}")
    if len(uniq) < n_folds:
        raise ConfigError(
            f"{len(uniq)} actors cannot fill {n_folds} folds", hint="use --folds <= number of actors"
        )
    folds = []
    for k in range(n_folds):
        test_actors = uniq[k::n_folds]
        test = np.isin(actors, test_actors)
        folds.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def cache_key(source: str, feature_set: str, uris: list[str], sizes: list[int | None]) -> str:
    """Cache key of a featurised corpus: feature-set hash + the listing (names and sizes)."""
    from aei_batch.features import get_feature_set

    fs = get_feature_set(feature_set)
    h = hashlib.sha256(f"{fs.name}|{fs.param_hash}|{source}".encode())
    for u, s in zip(uris, sizes, strict=True):
        h.update(f"{u}|{s}\n".encode())
    return f"{fs.name}-{fs.param_hash}-{h.hexdigest()[:12]}"


def cached_featurise(
    source: str,
    feature_set: str,
    *,
    cache_dir: Path | None = DEFAULT_CACHE,
    runner: str = "local",
    progress: bool = False,
    workers: int | None = None,
    augment_seed: int | None = None,
) -> LabelledSet:
    """`training.data.featurise`, memoised in `cache_dir/<key>.npz` (with augmentation,
    `<key>-aug<seed>v3.npz`; None: no cache)."""
    from aei_batch.training.data import featurise, labelled_refs

    def run() -> LabelledSet:
        return featurise(
            source, feature_set, runner=runner, progress=progress, workers=workers, augment_seed=augment_seed
        )

    if cache_dir is None:
        return run()
    refs, _ = labelled_refs(source)
    key = cache_key(source, feature_set, [r.uri for r in refs], [r.size for r in refs])
    # v2: each file's copies are seeded by its name (features/augment.py file_seed), not its position;
    # v3: two speed copies (x0.9, x1.1) and their telephone copies after the four copies of v2
    suffix = "" if augment_seed is None else f"-aug{augment_seed}v3"
    path = Path(cache_dir).expanduser() / f"{key}{suffix}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        log.info("features from cache %s", path)
        return LabelledSet(
            z["X"],
            z["y"],
            z["actors"],
            [str(u) for u in z["uris"]],
            {"unlabelled": int(z["unlabelled"]), "unreadable": int(z["unreadable"])},
            z.get("variants"),
        )
    data = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    arrays: dict[str, Any] = {
        "X": data.X,
        "y": data.y,
        "actors": data.actors,
        "uris": np.array(data.uris),
        "unlabelled": data.skipped.get("unlabelled", 0),
        "unreadable": data.skipped.get("unreadable", 0),
    }
    if data.variants is not None:
        arrays["variants"] = data.variants
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return data


def speaker_keys(actors: np.ndarray) -> list[str]:
    return [f"actor-{int(a):02d}" for a in actors]


@dataclass
class CVResult:
    """Out-of-fold probabilities of one model over all folds, with timing."""

    name: str
    proba: np.ndarray
    fold_accuracy: list[float]
    fit_seconds: list[float] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def prepare(
    X_train: np.ndarray,
    X_test: np.ndarray,
    train_spk: list[str],
    test_spk: list[str],
    *,
    speaker_adaptive: bool,
    min_speaker_files: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-speaker z-scoring of both sides (test speakers use only their own, unlabelled, files)."""
    if not speaker_adaptive:
        return X_train, X_test
    from aei_batch.scoring.speaker import GlobalStats, normalise

    g = GlobalStats.fit(X_train)
    return (
        normalise(X_train, train_spk, g, min_speaker_files)[0],
        normalise(X_test, test_spk, g, min_speaker_files)[0],
    )


def cross_validate(
    data: LabelledSet,
    make_model: Callable[[], Any],
    name: str,
    *,
    n_folds: int = 5,
    speaker_adaptive: bool = False,
    min_speaker_files: int = 10,
) -> CVResult:
    """Fit a fresh model per fold; collect out-of-fold 8-class probabilities and the report."""
    from aei_batch.models.adapt import predict_adapted
    from aei_batch.training.fit import fit_model
    from aei_batch.training.metrics import classification_report

    proba = np.zeros((len(data), N_CLASSES))
    spk = speaker_keys(data.actors)
    accs, secs = [], []
    for tr, te in actor_folds(data.actors, n_folds):
        assert not set(data.actors[tr]) & set(data.actors[te])
        Xtr, Xte = prepare(
            data.X[tr],
            data.X[te],
            [spk[i] for i in tr],
            [spk[i] for i in te],
            speaker_adaptive=speaker_adaptive,
            min_speaker_files=min_speaker_files,
        )
        model = make_model()
        t0 = time.perf_counter()
        adapt_groups = [spk[i] for i in tr] if speaker_adaptive else None
        fit_model(model, LabelledSet(Xtr, data.y[tr], data.actors[tr], [], {}), adapt_groups)
        secs.append(time.perf_counter() - t0)
        if speaker_adaptive:  # each test speaker adapted on its own files, as scoring does
            proba[te] = predict_adapted(model, Xte, [spk[i] for i in te], min_speaker_files)
        else:
            proba[te] = model.predict_proba8(Xte)
        accs.append(float((proba[te].argmax(1) == data.y[te]).mean()))
    report = classification_report(data.y, proba, data.actors)
    report["fold_accuracy"] = accs
    report["fold_accuracy_mean"] = float(np.mean(accs))
    report["fold_accuracy_sd"] = float(np.std(accs))
    report["n_folds"] = n_folds
    report["speaker_adaptive"] = speaker_adaptive
    return CVResult(name, proba, accs, secs, report)
