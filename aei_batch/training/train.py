"""`aei-batch train`: features -> models trained on some actors, measured on actors they never heard."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aei_batch.errors import ConfigError
from aei_batch.models.card import ArtifactInfo, ModelCard, sha256_file, write_card
from aei_batch.records import EMOTIONS
from aei_batch.training.data import LabelledSet, featurise
from aei_batch.training.metrics import classification_report

log = logging.getLogger(__name__)

DEFAULT_HOLDOUT = (21, 22, 23, 24)
SEED_MODEL_NAMES = ("svc", "xgboost", "random_forest")


def parse_actors(text: str | None) -> list[int]:
    """'21-24' / '17,18,19,20' / '21-22,24' / 'none' -> actor ids."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    actors: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                actors.extend(range(lo, hi + 1))
            else:
                actors.append(int(part))
        except ValueError:
            raise ConfigError(f"cannot parse actors {text!r}", hint="use e.g. 21-24, or 17,18,19,20, or none") from None
    if any(not 1 <= a <= 99 for a in actors):
        raise ConfigError(f"actor ids must be 1-99, got {text!r}")
    return sorted(set(actors))


@dataclass
class TrainOptions:
    data: str
    model_dir: str
    holdout_actors: list[int]
    feature_set: str = "seed_mfcc157"
    models: tuple[str, ...] = SEED_MODEL_NAMES
    runner: str = "ray"
    seed: int = 0
    progress: bool = True


def build_models(names: tuple[str, ...], seed: int) -> list[Any]:
    from aei_batch.models.tabular import seed_models

    available = {m.name: m for m in seed_models(seed)}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}", hint=f"choose from: {', '.join(available)}")
    return [available[n] for n in names]


def split(data: LabelledSet, holdout: list[int]) -> tuple[LabelledSet, LabelledSet | None]:
    if not holdout:
        return data, None
    test_mask = np.isin(data.actors, holdout)
    if not test_mask.any():
        log.warning("no files from held-out actors %s: nothing to evaluate on", holdout)
        return data, None
    if test_mask.all():
        raise ConfigError(
            f"every file belongs to the held-out actors {holdout}: nothing left to train on",
            hint="choose other --holdout-actors, or 'none'",
        )
    return data.subset(~test_mask), data.subset(test_mask)


def run_train(opts: TrainOptions) -> ModelCard:
    """Train the requested models, evaluate them on the held-out actors, write the model directory."""
    t0 = time.perf_counter()
    models = build_models(opts.models, opts.seed)
    data = featurise(opts.data, opts.feature_set, runner=opts.runner, progress=opts.progress)
    train, test = split(data, opts.holdout_actors)
    if len(np.unique(train.y)) < 2:
        raise ConfigError("training data holds fewer than two emotions", hint="give files of several emotions")
    out = Path(opts.model_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, ArtifactInfo] = {}
    for model in models:
        t1 = time.perf_counter()
        model.fit(train.X, train.y)
        path = out / f"{model.name}{model.suffix}"
        model.save(path)
        heldout = classification_report(test.y, model.predict_proba8(test.X), test.actors) if test else {}
        artifacts[model.name] = ArtifactInfo(
            file=path.name, kind=model.kind, sha256=sha256_file(path),
            classes=[EMOTIONS[int(c)] for c in model.classes], heldout=heldout,
            params={"fit_seconds": round(time.perf_counter() - t1, 2)},
        )
        acc = f"{heldout['accuracy']:.3f}" if heldout else "n/a"
        log.info("trained %s in %.1fs; held-out accuracy %s", model.name, time.perf_counter() - t1, acc)
    card = _card(opts, data, train, test, artifacts, time.perf_counter() - t0)
    write_card(out, card)
    return card


def _card(opts: TrainOptions, data: LabelledSet, train: LabelledSet, test: LabelledSet | None,
          artifacts: dict[str, ArtifactInfo], seconds: float) -> ModelCard:
    from aei_batch.features import get_feature_set

    if test is not None:
        default = max(artifacts, key=lambda k: artifacts[k].heldout["accuracy"])
    else:
        default = "xgboost" if "xgboost" in artifacts else next(iter(artifacts))
    now = datetime.now(UTC)
    digest = hashlib.sha256("".join(a.sha256 for a in artifacts.values()).encode()).hexdigest()[:8]
    return ModelCard(
        model_version=f"{now:%Y%m%dT%H%M%SZ}-{digest}",
        created_at=now.isoformat(timespec="seconds"),
        label_order=list(EMOTIONS),
        feature_set=get_feature_set(opts.feature_set).card(),
        default_model=default,
        models=artifacts,
        training={
            "source": opts.data,
            "n_files": len(data),
            "n_train": len(train),
            "n_heldout": len(test) if test else 0,
            "train_actors": sorted(int(a) for a in np.unique(train.actors)),
            "holdout_actors": sorted(int(a) for a in np.unique(test.actors)) if test else [],
            "requested_holdout_actors": opts.holdout_actors,
            "class_counts": {EMOTIONS[int(c)]: int((train.y == c).sum()) for c in np.unique(train.y)},
            "skipped": data.skipped,
            "train_files": train.uris,
            "seed": opts.seed,
            "seconds": round(seconds, 1),
        },
    )
