"""The model directory and its card.

    model_dir/
      card.json            label order, feature set + hash, training data, held-out metrics, artifacts
      <model>.xgb.json     XGBoost's own JSON format (no pickle)
      <model>.skops        scikit-learn estimators in skops format (no pickle; types checked on load)

Every artifact's SHA-256 is recorded in the card and verified before loading, so a model directory on
object storage cannot smuggle in a different file. A model directory may be local or on s3://.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aei_batch.errors import ModelError
from aei_batch.records import EMOTIONS

CARD_NAME = "card.json"
CARD_FORMAT = 1


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
        if d.get("format") != CARD_FORMAT:
            raise ModelError(f"unsupported model card format {d.get('format')!r} (expected {CARD_FORMAT})")
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


def materialise(model_dir: str) -> Path:
    """Return a local folder holding the model directory (downloading an s3:// one to a temp dir)."""
    from aei_batch.io import storage

    if not storage.is_s3(model_dir):
        p = Path(model_dir).expanduser()
        if not (p / CARD_NAME).is_file():
            raise ModelError(
                f"no model at {model_dir}: {CARD_NAME} not found",
                hint="train one with `aei-batch train --data DIR --model-dir DIR`, or fix --model-dir",
            )
        return p
    storage.check_s3_access(model_dir)
    local = Path(tempfile.mkdtemp(prefix="aei-model-"))
    prefix = model_dir.rstrip("/") + "/"
    try:
        card_bytes = storage.read_bytes(prefix + CARD_NAME)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot read {prefix}{CARD_NAME}: {type(exc).__name__}") from None
    (local / CARD_NAME).write_bytes(card_bytes)
    card = load_card(local)
    for art in card.models.values():
        dest = artifact_path(local, art.file)
        try:
            data = storage.read_bytes(prefix + art.file)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"cannot read model artifact {prefix}{art.file}: {type(exc).__name__}") from None
        dest.write_bytes(data)
    return local


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
