"""`aei-batch train --modality video`: face models trained on RAVDESS-named videos, held-out actors measured.

Files: RAVDESS-named video (modality 01 audio-video or 02 video-only, e.g. 01-01-06-01-02-01-12.mp4).
Each file is decoded with the scoring sampler (every N-th frame), its faces are cropped exactly as at
scoring time (`FACE_SPEC`), and every crop becomes a training example labelled with the file's
emotion. Whole actors are held out; held-out accuracy is measured per file, on the mean of its
frames' probabilities, as scoring computes it.

Models: ``face_cnn`` (a small CNN from scratch) and ``fer_transfer`` (the FER2013 network frozen,
a new 8-class head). Each is saved as ``.keras`` with its SHA-256 in the card.

Fusion: with ``--audio-model-dir`` the audio track of each held-out audio-video file is scored by
that audio model, and the audio weight of the late fusion is fitted on those held-out actors
(`models.fusion.fit_audio_weight`); the result is stored in the card (``options.fusion``) and used by
`aei-batch score --video-model DIR`. Without it the card says equal weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aei_batch.errors import ConfigError, ErrorCode, FileError, InputNotFoundError, StorageError
from aei_batch.io import storage
from aei_batch.models.card import ArtifactInfo, ModelCard, sha256_file, write_card
from aei_batch.models.model_card import fill_card, write_model_card
from aei_batch.records import EMOTIONS, parse_ravdess_name

log = logging.getLogger(__name__)

DEFAULT_VIDEO_MODELS = ("face_cnn", "fer_transfer")
DEFAULT_EPOCHS = {"face_cnn": 12, "fer_transfer": 8}

CROPS_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string()),
        pa.field("crops", pa.binary()),  # n x 64 x 64 uint8, C order
        pa.field("n_frames", pa.int32()),
        pa.field("faces_found", pa.int32()),
        pa.field("audio_features", pa.list_(pa.float32())),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
    ]
)


@dataclass
class VideoTrainOptions:
    data: str
    model_dir: str
    holdout_actors: list[int]
    models: tuple[str, ...] = DEFAULT_VIDEO_MODELS
    audio_model_dir: str | None = None
    frame_every: int = 20
    epochs: int | None = None
    runner: str = "ray"
    seed: int = 0
    progress: bool = True


class FaceCropStage:
    """Batch of labelled video refs -> face crops (and audio features when an audio model is given)."""

    def __init__(self, ctx: Any, frame_every: int, audio_feature_set: str | None) -> None:
        from aei_batch.decode.video import Sampling
        from aei_batch.features.faces import FaceCropper

        self.ctx = ctx
        self.sampling = Sampling(every_n=frame_every)
        self.cropper = FaceCropper()
        self.audio_feature_set = audio_feature_set
        self.audio: Any = None

    def setup(self) -> None:
        from aei_batch.scoring.clip import ClipFeaturiser

        if self.audio_feature_set:
            self.audio = ClipFeaturiser(self.audio_feature_set, self.ctx)

    def teardown(self) -> None:
        if self.audio is not None:
            self.audio.close()

    def process_batch(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([self._one(ref) for ref in batch.to_pylist()], schema=CROPS_SCHEMA)

    def _one(self, ref: dict[str, Any]) -> dict[str, Any]:
        from aei_batch.decode.video import decode_video
        from aei_batch.scoring.inputs import fetch

        row: dict[str, Any] = dict.fromkeys(CROPS_SCHEMA.names)
        row["uri"] = ref["uri"]
        try:
            data = fetch(ref, self.ctx)
            clip = decode_video(data, ref["uri"], self.sampling, max_duration_s=self.ctx.max_duration_s)
            crops = self.cropper.crop_all(clip.frames)
            row["crops"] = np.stack([c.crop for c in crops]).tobytes()
            row["n_frames"], row["faces_found"] = len(crops), sum(c.found for c in crops)
            if self.audio is not None:
                with contextlib.suppress(
                    FileError
                ):  # video-only: no audio features, still a training example
                    row["audio_features"] = self.audio.featurise(ref, data)[0].tolist()
        except FileError as err:
            row["error_code"], row["error_message"] = str(err.code), err.message
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001
            row["error_code"], row["error_message"] = str(ErrorCode.INTERNAL), f"{type(exc).__name__}: {exc}"
        return row


@dataclass
class VideoSet:
    """Crops of labelled video files; `frame_file` maps each crop to its file row."""

    crops: np.ndarray  # (n_crops, 64, 64) uint8
    frame_file: np.ndarray  # (n_crops,) file index
    y: np.ndarray  # (n_files,) class ids
    actors: np.ndarray  # (n_files,)
    uris: list[str]
    audio: list[np.ndarray | None]
    skipped: dict[str, int]


def labelled_video_refs(source: str) -> list[Any]:
    refs = [
        r
        for r in storage.list_inputs(source, extensions=storage.VIDEO_EXTENSIONS)
        if parse_ravdess_name(r.uri).emotion is not None and parse_ravdess_name(r.uri).actor is not None
    ]
    if not refs:
        raise InputNotFoundError(
            f"no RAVDESS-named labelled video under {source}",
            hint="video training needs names like 01-01-06-01-02-01-12.mp4 (modality 01 or 02)",
        )
    return refs


def collect(opts: VideoTrainOptions, audio_feature_set: str | None) -> VideoSet:
    """Decode and crop every labelled video (fanned out like scoring), sorted by uri for determinism."""
    from aei_batch.runtime.runners import run_stage
    from aei_batch.scoring.rows import RunContext, refs_to_table

    refs = labelled_video_refs(opts.data)
    ctx = RunContext.new(model_dir="", max_duration_s=600.0)
    kwargs = {"ctx": ctx, "frame_every": opts.frame_every, "audio_feature_set": audio_feature_set}
    rows = [
        r
        for out in run_stage(FaceCropStage, kwargs, refs_to_table(refs), runner=opts.runner, batch_size=8)
        for r in out.to_pylist()
    ]
    bad = [r for r in rows if r["crops"] is None]
    for r in bad:
        log.warning("skipping %s: %s %s", r["uri"], r["error_code"], r["error_message"])
    good = sorted((r for r in rows if r["crops"] is not None), key=lambda r: r["uri"])
    if not good:
        raise ConfigError(f"none of the {len(refs)} labelled videos under {opts.data} could be decoded")
    crops = [np.frombuffer(r["crops"], np.uint8).reshape(r["n_frames"], 64, 64) for r in good]
    labels = [parse_ravdess_name(r["uri"]) for r in good]
    return VideoSet(
        crops=np.concatenate(crops),
        frame_file=np.repeat(np.arange(len(good)), [len(c) for c in crops]),
        y=np.array([EMOTIONS.index(str(lab.emotion)) for lab in labels]),
        actors=np.array([int(lab.actor or 0) for lab in labels]),
        uris=[r["uri"] for r in good],
        audio=[np.asarray(r["audio_features"], np.float32) if r["audio_features"] else None for r in good],
        skipped={"unreadable": len(bad)},
    )


def file_probs(frame_p: np.ndarray, frame_file: np.ndarray, files: np.ndarray) -> np.ndarray:
    """Per-file probabilities: the mean of each file's frames (as scoring aggregates them)."""
    from aei_batch.models.fusion import aggregate_frames

    return np.stack([aggregate_frames(frame_p[frame_file == f]) for f in files])


def _build(name: str, seed: int) -> Any:
    from aei_batch.models.face import build_face_cnn, build_fer_transfer

    builders: dict[str, Callable[..., Any]] = {"face_cnn": build_face_cnn, "fer_transfer": build_fer_transfer}
    if name not in builders:
        raise ConfigError(f"unknown video model {name!r}", hint=f"choose from: {', '.join(builders)}")
    return builders[name](seed=seed)


def fit_one(name: str, X: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> Any:
    """Build and fit one face network on uint8 crops X (n, 64, 64) with labels y."""
    import keras

    from aei_batch.models.face import configure_tensorflow, preprocess

    configure_tensorflow(threads=0)  # training runs in the driver: let TensorFlow use every core
    model = _build(name, seed)
    lr = 3e-3 if name == "fer_transfer" else 1e-3
    model.compile(
        optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    model.fit(preprocess(X[order]), y[order], epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    return model


def run_train_video(opts: VideoTrainOptions) -> ModelCard:
    """Train the face models, evaluate per file on held-out actors, fit fusion, write the model directory."""
    from aei_batch.models.face import VIDEO_MODEL_KIND, FaceModel
    from aei_batch.training.metrics import classification_report

    t0 = time.perf_counter()
    for name in opts.models:
        _build_check(name)
    if opts.frame_every < 1:
        raise ConfigError(f"--frame-every must be at least 1, got {opts.frame_every}")
    audio_model = _audio_model(opts.audio_model_dir)
    data = collect(opts, audio_model.feature_set.id if audio_model else None)
    test_files = np.flatnonzero(np.isin(data.actors, opts.holdout_actors))
    train_files = np.flatnonzero(~np.isin(data.actors, opts.holdout_actors))
    if len(train_files) == 0:
        raise ConfigError(
            f"every video belongs to the held-out actors {opts.holdout_actors}",
            hint="choose other --holdout-actors, or 'none'",
        )
    train_mask = np.isin(data.frame_file, train_files)
    Xtr, ytr = data.crops[train_mask], data.y[data.frame_file[train_mask]]
    out = Path(opts.model_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, ArtifactInfo] = {}
    heldout_p: dict[str, np.ndarray] = {}
    for name in opts.models:
        t1 = time.perf_counter()
        epochs = opts.epochs or DEFAULT_EPOCHS[name]
        net = fit_one(name, Xtr, ytr, epochs, opts.seed)
        path = out / f"{name}.keras"
        net.save(path)
        report: dict[str, Any] = {}
        if len(test_files):
            frame_p = FaceModel(name, "", net).predict_proba8(data.crops)
            heldout_p[name] = file_probs(frame_p, data.frame_file, test_files)
            report = classification_report(data.y[test_files], heldout_p[name], data.actors[test_files])
        artifacts[name] = ArtifactInfo(
            file=path.name,
            kind=VIDEO_MODEL_KIND,
            sha256=sha256_file(path),
            classes=list(EMOTIONS),
            heldout=report,
            params={
                "epochs": epochs,
                "params": int(net.count_params()),
                "trainable_params": int(sum(int(np.prod(w.shape)) for w in net.trainable_weights)),
                "fit_seconds": round(time.perf_counter() - t1, 2),
            },
        )
        log.info("trained %s (%d params) in %.1fs", name, net.count_params(), time.perf_counter() - t1)
    default = (
        max(artifacts, key=lambda k: artifacts[k].heldout["accuracy"]) if heldout_p else next(iter(artifacts))
    )
    fusion = _fit_fusion(data, test_files, heldout_p.get(default), audio_model)
    card = _card(opts, data, train_files, test_files, artifacts, default, fusion, time.perf_counter() - t0)
    fill_card(card, opts.data, modality="video", licence=getattr(opts, "data_licence", None))
    write_card(out, card)
    write_model_card(out, card)
    return card


def _build_check(name: str) -> None:
    if name not in DEFAULT_EPOCHS:
        raise ConfigError(f"unknown video model {name!r}", hint=f"choose from: {', '.join(DEFAULT_EPOCHS)}")


def _audio_model(model_dir: str | None) -> Any:
    if not model_dir:
        return None
    from aei_batch.models.loader import load_model

    return load_model(model_dir)


def _fit_fusion(
    data: VideoSet, test_files: np.ndarray, video_p: np.ndarray | None, audio_model: Any
) -> dict[str, Any]:
    """Fit the audio weight on held-out audio-video files when an audio model and such files exist."""
    from aei_batch.models.fusion import FusionSpec, fit_audio_weight

    if audio_model is None or video_p is None:
        return FusionSpec().to_dict()
    have = [k for k, f in enumerate(test_files) if data.audio[f] is not None]
    if not have:
        return FusionSpec(source="default: equal weights (no held-out audio-video files)").to_dict()
    files = test_files[have]
    audio_p = audio_model.predict_proba8(np.stack([data.audio[f] for f in files]))  # type: ignore[misc]
    source = (
        f"fitted on held-out actors {sorted(set(int(a) for a in data.actors[files]))} "
        f"with audio model {audio_model.name}@{audio_model.version}"
    )
    return fit_audio_weight(audio_p, video_p[have], data.y[files], source=source).to_dict()


def _card(
    opts: VideoTrainOptions,
    data: VideoSet,
    train_files: np.ndarray,
    test_files: np.ndarray,
    artifacts: dict[str, ArtifactInfo],
    default: str,
    fusion: dict[str, Any],
    seconds: float,
) -> ModelCard:
    from aei_batch.features.faces import FACE_SPEC

    now = datetime.now(UTC)
    digest = hashlib.sha256("".join(a.sha256 for a in artifacts.values()).encode()).hexdigest()[:8]
    y_train = data.y[train_files]
    return ModelCard(
        model_version=f"{now:%Y%m%dT%H%M%SZ}-{digest}",
        created_at=now.isoformat(timespec="seconds"),
        label_order=list(EMOTIONS),
        feature_set=FACE_SPEC.card(),
        default_model=default,
        models=artifacts,
        training={
            "source": opts.data,
            "n_files": len(data.uris),
            "n_train": int(len(train_files)),
            "n_heldout": int(len(test_files)),
            "n_train_crops": int(np.isin(data.frame_file, train_files).sum()),
            "train_actors": sorted(int(a) for a in np.unique(data.actors[train_files])),
            "holdout_actors": sorted(int(a) for a in np.unique(data.actors[test_files])),
            "requested_holdout_actors": opts.holdout_actors,
            "class_counts": {EMOTIONS[int(c)]: int((y_train == c).sum()) for c in np.unique(y_train)},
            "skipped": data.skipped,
            "train_files": [data.uris[i] for i in train_files],
            "seed": opts.seed,
            "seconds": round(seconds, 1),
        },
        options={
            "modality": "video",
            "sampling": {"every_n": opts.frame_every},
            "fusion": fusion,
            "audio_model_dir": opts.audio_model_dir,
        },
    )


def resolve_modality(data: str, modality: str) -> str:
    """'audio' / 'video' as given; 'auto': audio when labelled audio exists under `data`, else video."""
    if modality in ("audio", "video"):
        return modality
    if modality != "auto":
        raise ConfigError(f"unknown --modality {modality!r}", hint="use audio, video or auto")
    for ref in storage.list_inputs(data, extensions=storage.AUDIO_EXTENSIONS):
        if parse_ravdess_name(ref.uri).emotion is not None:
            return "audio"
    return "video"


def train_video_from(opts: Any) -> ModelCard:
    """`run_train` for --modality video: the audio TrainOptions mapped onto VideoTrainOptions."""
    from aei_batch.config import SEED_MODEL_NAMES

    models = DEFAULT_VIDEO_MODELS if tuple(opts.models) == tuple(SEED_MODEL_NAMES) else tuple(opts.models)
    return run_train_video(
        VideoTrainOptions(
            data=opts.data,
            model_dir=opts.model_dir,
            holdout_actors=list(opts.holdout_actors),
            models=models,
            audio_model_dir=getattr(opts, "audio_model_dir", None),
            frame_every=getattr(opts, "frame_every", 20),
            epochs=getattr(opts, "epochs", None),
            runner=opts.runner,
            seed=opts.seed,
            progress=opts.progress,
        )
    )
