"""Faces: detect the face in a sampled grayscale frame, crop it with a margin, resize to the model input.

Detection uses OpenCV's Haar frontal-face cascade (`haarcascade_frontalface_default.xml` from
opencv-python-headless<5, `cv2.data.haarcascades`), loaded once per `FaceCropper` (one per worker).
It runs on a copy of the frame downscaled to `detect_width` pixels wide (a 1280x720 frame is searched
at 320x180: about 16x fewer pixels), and the box is scaled back to full resolution for the crop.
When several faces are found, the largest is kept.

When no face is found the frame is not an error: the crop falls back to the centre square of side
`fallback_frac` x the shorter frame side (RAVDESS and most talking-head material frame the face in
the middle), and the frame is flagged `face_found=False`, so per-file counts (`faces_found` out of
`frames_sampled`) show how much of a file's video prediction came from a detected face.

`FACE_SPEC` names the preprocessing; its hash goes into video model cards like an audio feature hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FaceSpec:
    """How a face crop is made. Changing any field changes `param_hash` (models refuse a mismatch)."""

    name: str = "face_crop64"
    version: int = 1
    size: int = 64  # the model input is size x size x 1
    margin: float = 0.10  # extra border around the detected box, as a share of its side, on each side
    detect_width: int = 320  # frames are downscaled to this width for detection
    scale_factor: float = 1.2  # 1.1 found the same faces at 1.7x the cost on 720p frames
    min_neighbors: int = 5
    min_face_frac: float = 0.15  # smallest face side, as a share of the downscaled frame height
    fallback_frac: float = 0.6  # centre-crop side when no face is found, share of the shorter side

    @property
    def param_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"

    def card(self) -> dict[str, Any]:
        return {**asdict(self), "hash": self.param_hash}


FACE_SPEC = FaceSpec()


@dataclass(frozen=True)
class FaceCrop:
    """A model-ready crop (uint8, size x size), whether a face was detected, and the box used (x, y, w, h)."""

    crop: np.ndarray
    found: bool
    box: tuple[int, int, int, int]


def expand_box(
    box: tuple[int, int, int, int], margin: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Grow (x, y, w, h) by `margin` of its side on every side, make it square, and clip it to the frame."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1.0 + 2.0 * margin)))
    side = max(1, min(side, width, height))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(min(max(cx - side / 2.0, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0), height - side)))
    return x0, y0, side, side


def centre_box(width: int, height: int, frac: float) -> tuple[int, int, int, int]:
    """The centred square of side `frac` x the shorter side: the crop used when no face is found."""
    side = max(1, int(round(min(width, height) * frac)))
    return (width - side) // 2, (height - side) // 2, side, side


def crop_resize(gray: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Cut `box` out of a grayscale frame and resize it to size x size (area interpolation when shrinking)."""
    import cv2

    x, y, w, h = box
    patch = gray[y : y + h, x : x + w]
    interp = cv2.INTER_AREA if w > size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(patch, (size, size), interpolation=interp), dtype=np.uint8)


def cascade_path() -> str:
    """Path of the frontal-face cascade shipped in opencv-python-headless<5."""
    import os

    import cv2

    folder = cv2.data.haarcascades  # type: ignore[attr-defined]  # missing from the stubs
    path = os.path.join(folder, CASCADE_FILE)
    if not os.path.isfile(path):
        raise RuntimeError(f"{CASCADE_FILE} not found in {folder}: install opencv-python-headless<5")
    return path


class FaceCropper:
    """Detect-and-crop with one cascade loaded at construction (make one per worker, reuse it)."""

    def __init__(self, spec: FaceSpec = FACE_SPEC) -> None:
        import cv2

        self.spec = spec
        self._cascade = cv2.CascadeClassifier(cascade_path())
        if self._cascade.empty():
            raise RuntimeError("OpenCV could not load the frontal-face cascade")

    def detect(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face box in full-frame coordinates, or None."""
        import cv2

        h, w = gray.shape[:2]
        scale = min(1.0, self.spec.detect_width / float(w))
        small = (
            cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
            if scale < 1.0
            else gray
        )
        min_side = max(16, int(small.shape[0] * self.spec.min_face_frac))
        found = self._cascade.detectMultiScale(
            small,
            scaleFactor=self.spec.scale_factor,
            minNeighbors=self.spec.min_neighbors,
            minSize=(min_side, min_side),
        )
        if len(found) == 0:
            return None
        x, y, bw, bh = max((tuple(int(v) for v in b) for b in found), key=lambda b: b[2] * b[3])
        return (int(round(x / scale)), int(round(y / scale)), int(round(bw / scale)), int(round(bh / scale)))

    def crop(self, gray: np.ndarray) -> FaceCrop:
        """Crop the face of one frame, or the centre square (flagged) when none is found."""
        h, w = gray.shape[:2]
        det = self.detect(gray)
        if det is None:
            box = centre_box(w, h, self.spec.fallback_frac)
            return FaceCrop(crop_resize(gray, box, self.spec.size), False, box)
        box = expand_box(det, self.spec.margin, w, h)
        return FaceCrop(crop_resize(gray, box, self.spec.size), True, box)

    def crop_all(self, frames: list[np.ndarray]) -> list[FaceCrop]:
        return [self.crop(f) for f in frames]


_DEFAULT_CROPPER: FaceCropper | None = None


def default_cropper() -> FaceCropper:
    """One `FaceCropper` per process (the cascade loads once), for module-level callers (decoder child)."""
    global _DEFAULT_CROPPER
    if _DEFAULT_CROPPER is None:
        _DEFAULT_CROPPER = FaceCropper()
    return _DEFAULT_CROPPER
