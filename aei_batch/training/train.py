"""`aei-batch train`: features -> models trained on some actors, measured on actors they never heard."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aei_batch.config import (
    BEST_FEATURE_SET,
    BEST_MODELS,
    DEFAULT_HOLDOUT,
    SEED_MODEL_NAMES,
    TrainOptions,
    parse_actors,
)
from aei_batch.errors import ConfigError
from aei_batch.models.card import ArtifactInfo, ModelCard, sha256_file, write_card
from aei_batch.models.model_card import fill_card, write_model_card
from aei_batch.records import EMOTIONS
from aei_batch.training.data import LabelledSet
from aei_batch.training.metrics import classification_report

log = logging.getLogger(__name__)

__all__ = [
    "BEST_FEATURE_SET",
    "BEST_MODELS",
    "DEFAULT_HOLDOUT",
    "SEED_MODEL_NAMES",
    "TrainOptions",
    "audio_defaults",
    "parse_actors",
    "run_train",
    "train_defaults",
]


def train_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The command line's train defaults (a `load_options` finisher): the best audio setup for audio data,
    the seed's names for video (which maps them to its own models). Options given anywhere are kept."""
    if all(values.get(k) is not None for k in ("feature_set", "models", "speaker_adaptive")):
        return values
    given = {k: v for k, v in values.items() if v is not None}
    TrainOptions(**{"model_dir": "-", **given})  # types, ranges and `data` first, before the data is listed
    from aei_batch.training.video import resolve_modality

    audio = resolve_modality(str(values["data"]), str(values.get("modality") or "auto")) == "audio"
    out = dict(values)
    if out.get("feature_set") is None:
        out["feature_set"] = BEST_FEATURE_SET if audio else "seed_mfcc157"
    if out.get("models") is None:
        out["models"] = BEST_MODELS if audio else SEED_MODEL_NAMES
    if out.get("speaker_adaptive") is None:
        out["speaker_adaptive"] = audio
    return out


def audio_defaults(
    data: str, modality: str, feature_set: str | None, models: str | None, speaker_adaptive: bool | None
) -> tuple[str, tuple[str, ...], bool]:
    """CLI defaults: the best audio configuration for audio data; the seed's names otherwise (video maps
    them to its own models). Kept for callers of the old API; the CLI uses `train_defaults`."""
    values = train_defaults(
        {
            "data": data,
            "modality": modality,
            "feature_set": feature_set,
            "models": tuple(m.strip() for m in models.split(",") if m.strip()) if models else None,
            "speaker_adaptive": speaker_adaptive,
        }
    )
    return values["feature_set"], tuple(values["models"]), bool(values["speaker_adaptive"])


def build_models(
    names: tuple[str, ...], seed: int, dim: int = 0, params: dict[str, Any] | None = None
) -> list[Any]:
    """Fresh classifiers by name (the seed's three and the models of models/ensemble.py)."""
    from aei_batch.models.ensemble import build_models as build

    return build(names, seed, dim, params)


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
    from aei_batch.training.video import resolve_modality, train_video_from

    if resolve_modality(opts.data, opts.modality) == "video":
        return train_video_from(opts)
    from aei_batch.features import get_feature_set
    from aei_batch.training.adaptive import adapt, group_keys, load_data, searched_params
    from aei_batch.training.fit import fit_model

    t0 = time.perf_counter()
    build_models(opts.models, opts.seed, get_feature_set(opts.feature_set).dim)  # fail fast on unknown names
    data = load_data(opts)
    train, test = split(data, opts.holdout_actors)
    test_files = test.originals() if test is not None else None  # un-normalised, for the telephone copies
    if len(np.unique(train.y)) < 2:
        raise ConfigError(
            "training data holds fewer than two emotions", hint="give files of several emotions"
        )
    train, test, sa_options = adapt(opts, train, test)
    params = searched_params(opts, train)
    if opts.epochs and "cnn" in opts.models:
        params["cnn"] = {"epochs": opts.epochs}
    models = build_models(opts.models, opts.seed, train.X.shape[1], params)
    out = Path(opts.model_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, ArtifactInfo] = {}
    adapt_groups = group_keys(train) if sa_options.get("speaker_adaptive") else None
    window_rows = _window_rows(opts, models, train, sa_options)
    for model in models:
        t1 = time.perf_counter()
        fit_model(model, train, adapt_groups, window_rows)
        path = out / f"{model.name}{model.suffix}"
        model.save(path)
        heldout = _heldout_report(model, test, opts.min_speaker_files) if test else {}
        artifacts[model.name] = ArtifactInfo(
            file=path.name,
            kind=model.kind,
            sha256=sha256_file(path),
            classes=[EMOTIONS[int(c)] for c in model.classes],
            heldout=heldout,
            params=_fit_params(model, time.perf_counter() - t1),
        )
        acc = f"{heldout['accuracy']:.3f}" if heldout else "n/a"
        log.info("trained %s in %.1fs; held-out accuracy %s", model.name, time.perf_counter() - t1, acc)
    if test_files is not None and len(test_files):
        _heldout_conditions(opts, models, artifacts, test_files, sa_options)
    card = _card(opts, data, train, test, artifacts, time.perf_counter() - t0)
    card.options.update(sa_options)
    if params:
        card.training["searched_params"] = params
    fill_card(card, opts.data, modality="audio", licence=getattr(opts, "data_licence", None))
    write_card(out, card)
    if test_files is not None and len(test_files) and opts.heldout_windows:
        _heldout_windows(opts, out, card, test_files)  # scores with the model directory just written
        write_card(out, card)
    write_model_card(out, card)
    return card


def _window_rows(
    opts: TrainOptions, models: list[Any], train: LabelledSet, sa_options: dict[str, Any]
) -> Any:
    """Windows of generated calls of the training actors (training/calls.py `call_windows`), normalised as
    scoring normalises a call channel, for the models that fit a window temperature (the default blend);
    None when no model would use them (`--no-window-temperature`, another model, or a single training
    actor: the windows are scored by models that did not hear their speaker)."""
    from aei_batch.models.ensemble import WindowRows

    wanted = any(getattr(getattr(m, "estimator", None), "accepts_window_rows", False) for m in models)
    if not opts.window_temperature or not wanted or len(np.unique(train.actors)) < 2:
        return None
    from aei_batch.training.calls import call_windows

    t0 = time.perf_counter()
    X, y, actors, groups = call_windows(train.originals(), opts.feature_set, seed=opts.seed)
    if not len(y):
        log.warning("no labelled call windows: windows keep the file temperature")
        return None
    if sa_options.get("speaker_adaptive"):
        from aei_batch.scoring.speaker import GlobalStats, SpeakerTransform

        g = GlobalStats.from_json(sa_options["global_stats"])
        X = SpeakerTransform(True, g, opts.min_speaker_files).apply_own_groups(X, groups)
        adapt_groups: Any = np.asarray(groups)
    else:
        adapt_groups = None
    log.info(
        "%d windows of %d generated calls of the training actors featurised in %.1fs (window temperature)",
        len(y),
        len({g.split("/")[0] for g in groups}),
        time.perf_counter() - t0,
    )
    return WindowRows(X, y, actors, adapt_groups)


def _fit_params(model: Any, seconds: float) -> dict[str, Any]:
    """What the card records of a fit: its time and, for a blend, what its inner CV chose."""
    out: dict[str, Any] = {"fit_seconds": round(seconds, 2)}
    est: Any = getattr(model, "estimator", None)
    if est is not None and hasattr(est, "members_"):
        out["members"] = [name for name, _, _ in est.members_]
        out["temperature"] = round(float(est.temperature_), 4)
        tw = getattr(est, "window_temperature_", None)
        out["window_temperature"] = None if tw is None else round(float(tw), 4)
        out["adapt_tau"] = getattr(est, "adapt_tau_", None)
    return out


def _heldout_report(model: Any, test: LabelledSet, min_files: int) -> dict[str, Any]:
    """The held-out classification report, predicted as scoring would: a model that adapts to speaker
    groups adapts to each held-out speaker's files (already normalised by `adapt`)."""
    from aei_batch.models.adapt import predict_adapted
    from aei_batch.training.adaptive import speakers_of

    proba = predict_adapted(model, test.X, list(speakers_of(test)), min_files)
    return classification_report(test.y, proba, test.actors)


def _heldout_windows(opts: TrainOptions, out: Path, card: ModelCard, test: LabelledSet) -> None:
    """The default model's held-out report gains `windows`: generated calls of the held-out actors scored
    window by window through `score` (training/calls.py). A failure here leaves the trained model as it is."""
    from aei_batch.errors import AeiError
    from aei_batch.training.calls import CallSettings, windows_report

    t0 = time.perf_counter()
    try:
        # a few call files: in this process, whatever runner featurised the corpus
        rep = windows_report(str(out), card.default_model, test, CallSettings(seed=opts.seed, runner="local"))
    except AeiError as err:
        log.warning("held-out call windows not measured: %s", err)
        return
    card.models[card.default_model].heldout["windows"] = rep
    log.info("held-out call windows measured in %.1fs", time.perf_counter() - t0)


def _heldout_conditions(
    opts: TrainOptions,
    models: list[Any],
    artifacts: dict[str, ArtifactInfo],
    test: LabelledSet,
    sa_options: dict[str, Any],
) -> None:
    """Each model's held-out report gains `telephone` (the held-out files as telephone copies: 8 kHz,
    300-3,400 Hz, mu-law) and `noise_floor` (the same files under a -65 dBFS white noise floor), scored as
    scoring would (per speaker in speaker-adaptive mode), with the drop against the files as they are.
    Where the model is weak goes into MODEL_CARD.md."""
    from aei_batch.training.data import featurise_copy
    from aei_batch.training.evaluate import CONDITIONS, condition_report, speaker_predictor

    t0 = time.perf_counter()
    predictors: dict[str, Any] = {m.name: (lambda X, actors, m=m: m.predict_proba8(X)) for m in models}
    if sa_options.get("speaker_adaptive"):
        from aei_batch.scoring.speaker import GlobalStats

        g = GlobalStats.from_json(sa_options["global_stats"])
        predictors = {m.name: speaker_predictor(m, g, opts.min_speaker_files) for m in models}
    for copy, key in (("telephone", "telephone"), ("noise", "noise_floor")):
        copies = featurise_copy(test, opts.feature_set, copy=copy, runner=opts.runner, progress=opts.progress)
        for name, predict in predictors.items():
            artifacts[name].heldout[key] = condition_report(predict, test, copies, CONDITIONS[copy])
    log.info("held-out telephone and noise-floor copies measured in %.1fs", time.perf_counter() - t0)


def _card(
    opts: TrainOptions,
    data: LabelledSet,
    train: LabelledSet,
    test: LabelledSet | None,
    artifacts: dict[str, ArtifactInfo],
    seconds: float,
) -> ModelCard:
    from aei_batch.features import get_feature_set

    if test is not None:
        default = max(artifacts, key=lambda k: artifacts[k].heldout["accuracy"])
    else:
        default = "xgboost" if "xgboost" in artifacts else next(iter(artifacts))
    files = train.originals()
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
            "n_files": len(data.originals()),
            "n_train_files": len(train.originals()),  # distinct files of the training actors
            "n_train": len(train),  # training rows: the files and their augmented copies
            "n_heldout": len(test) if test else 0,
            "train_actors": sorted(int(a) for a in np.unique(train.actors)),
            "holdout_actors": sorted(int(a) for a in np.unique(test.actors)) if test else [],
            "requested_holdout_actors": opts.holdout_actors,
            "class_counts": {EMOTIONS[int(c)]: int((files.y == c).sum()) for c in np.unique(files.y)},
            "skipped": data.skipped,
            "train_files": files.uris,
            "seed": opts.seed,
            "seconds": round(seconds, 1),
        },
    )
