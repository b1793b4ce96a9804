"""The model directory and its card.

    model_dir/
      card.json            label order, feature set + hash, training data, held-out metrics, artifacts
      <model>.xgb.json     XGBoost's own JSON format (no pickle)
      <model>.skops        scikit-learn estimators in skops format (no pickle; types checked on load)

Every artifact's SHA-256 is recorded in the card and verified before loading, so a model directory on
object storage cannot smuggle in a different file. A model directory may be local or on s3:// (cached
locally by content: `materialise`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aei_batch.errors import FileError, ModelError
from aei_batch.records import EMOTIONS

CARD_NAME = "card.json"
CARD_FORMAT = 1
_CARD_HINT = "the card was edited or corrupted: restore the model directory or retrain it"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class ArtifactInfo:
    file: str
    kind: str  # "xgboost" | "sklearn" | "keras" | ...
    sha256: str
    classes: list[str]
    heldout: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelCard:
    model_version: str
    created_at: str
    label_order: list[str]
    feature_set: dict[str, Any]
    default_model: str
    models: dict[str, ArtifactInfo]
    training: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    format: int = CARD_FORMAT
    # For people (aei_batch/models/model_card.py, MODEL_CARD.md): the licence the training data imposes on
    # the model, and its intended use, out-of-scope uses and limitations. Empty on cards written before.
    licence: dict[str, Any] = field(default_factory=dict)
    use: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ModelError("the model card is not a JSON object", hint=_CARD_HINT)
        if d.get("format") != CARD_FORMAT:
            raise ModelError(f"unsupported model card format {d.get('format')!r} (expected {CARD_FORMAT})")
        fs = d.get("feature_set")
        if not isinstance(fs, dict) or not isinstance(fs.get("name"), str) or not fs.get("hash"):
            raise ModelError(
                f"the model card's feature_set is {_short(fs)}, not an object with a name and a hash",
                hint=_CARD_HINT,
            )
        for key in ("options", "training"):
            if key in d and not isinstance(d[key], dict):
                raise ModelError(
                    f"the model card's {key} is {_short(d[key])}, not an object", hint=_CARD_HINT
                )
        if not isinstance(d.get("models"), dict) or not d["models"]:
            raise ModelError("the model card lists no models", hint=_CARD_HINT)
        d["models"] = {k: ArtifactInfo(**v) for k, v in d["models"].items()}
        card = cls(**d)
        if list(card.label_order) != list(EMOTIONS):
            raise ModelError(f"model card label order {card.label_order} differs from {list(EMOTIONS)}")
        return card


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MODEL_CACHE_ENV = "AEI_MODEL_CACHE"
MODEL_CACHE_KEEP = 4  # model versions kept in the cache (the least recently used are removed)


def model_cache_root() -> Path:
    """Where s3:// model directories are cached: $AEI_MODEL_CACHE, else ~/.cache/aei-batch/models.

    When that folder cannot be created (a read-only home in a container), the cache is this process's
    temporary folder instead, removed at exit (aei_batch.io.storage.temp_root)."""
    from aei_batch.io import storage

    configured = os.environ.get(MODEL_CACHE_ENV)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(configured) if configured else Path(base) / "aei-batch" / "models"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(str(root))
    except OSError:
        return storage.temp_dir("aei-model-")
    return root


def materialise(model_dir: str) -> Path:
    """A local folder holding the model directory.

    A local (or file://) directory is used in place. An s3:// one is downloaded once per content into
    the model cache (`model_cache_root()`), keyed by the SHA-256 of its card, which itself pins every
    artifact's SHA-256: a rerun, and every worker on the machine, reuses it instead of leaving a copy in
    $TMPDIR per run. A missing bucket or card is a ModelError (exit 7)."""
    from aei_batch.io import storage

    storage.refuse_credentials_in_url(model_dir, "model directory")
    local_dir = storage.as_local_path(model_dir)
    if local_dir is not None:
        p = Path(local_dir).expanduser()
        if not (p / CARD_NAME).is_file():
            raise ModelError(
                f"no model at {model_dir}: {CARD_NAME} not found",
                hint="train one with `aei-batch train --data DIR --model-dir DIR`, or fix --model-dir",
            )
        return p
    card_bytes = _read_model_file(model_dir, CARD_NAME)
    cache = model_cache_root()
    entry = cache / hashlib.sha256(card_bytes).hexdigest()[:32]
    if (entry / _COMPLETE).is_file():
        os.utime(entry)  # most recently used
        return entry
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=cache))
    try:
        (staging / CARD_NAME).write_bytes(card_bytes)
        card = load_card(staging)
        for art in card.models.values():
            artifact_path(staging, art.file).write_bytes(_read_model_file(model_dir, art.file))
        (staging / _COMPLETE).write_text(model_dir + "\n")
        try:
            os.rename(staging, entry)  # atomic; another process may have won the race: use its copy
        except OSError:
            if not (entry / _COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune_cache(cache, keep=entry)
    return entry


_COMPLETE = ".complete"


def _read_model_file(model_dir: str, name: str) -> bytes:
    """One file of an s3:// model directory; a missing bucket or file is a ModelError (exit 7)."""
    from aei_batch.errors import InputNotFoundError
    from aei_batch.io import storage

    uri = storage.join(model_dir, name)
    try:
        return storage.read_bytes(uri, max_bytes=None)
    except FileError as exc:
        raise ModelError(
            f"cannot read {uri}: {exc.message}",
            hint="check --model-dir (bucket and prefix) or retrain the model",
        ) from None
    except InputNotFoundError as exc:
        raise ModelError(
            f"model directory {model_dir}: {exc}", hint="check the bucket name in --model-dir"
        ) from None


def _prune_cache(cache: Path, *, keep: Path) -> None:
    """Remove the least recently used model versions beyond MODEL_CACHE_KEEP (never `keep`)."""
    entries = [p for p in cache.iterdir() if p.is_dir() and (p / _COMPLETE).is_file()]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MODEL_CACHE_KEEP:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def artifact_path(local_dir: Path, file: str) -> Path:
    """`local_dir / file` for a plain file name; refuses names that would leave the model directory.

    A card read from object storage is untrusted until its artifacts verify: `../x`, `/etc/x` or
    `sub/x` must not make us write (materialise) or read (verify) anywhere else.
    """
    name = str(file)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ModelError(
            f"model card names an artifact {name!r} that is not a plain file name (refusing it)",
            hint="the card was edited or corrupted: restore or retrain the model",
        )
    return local_dir / name


def load_card(local_dir: Path) -> ModelCard:
    try:
        return ModelCard.from_json((local_dir / CARD_NAME).read_text())
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelError(
            f"corrupt model card in {local_dir}: {type(exc).__name__}: {exc}",
            hint="retrain the model or restore the directory",
        ) from None


def verify_artifact(local_dir: Path, art: ArtifactInfo) -> Path:
    path = artifact_path(local_dir, art.file)
    if not path.is_file():
        raise ModelError(
            f"model artifact {art.file} missing from {local_dir}", hint="restore or retrain the model"
        )
    actual = sha256_file(path)
    if actual != art.sha256:
        raise ModelError(
            f"model artifact {art.file} does not match the checksum in the card (refusing to load it)",
            hint="the directory was modified or corrupted: restore or retrain the model",
        )
    return path


def write_card(model_dir: Path, card: ModelCard) -> None:
    tmp = model_dir / (CARD_NAME + ".tmp")
    tmp.write_text(card.to_json())
    os.replace(tmp, model_dir / CARD_NAME)
