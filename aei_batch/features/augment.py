"""Training-time audio augmentation: telephone copies, random crops and speed copies (docs/MODELS.md).

Call-centre audio is 8 kHz, band-limited and companded, and long recordings are scored in windows; a
model trained on whole wideband clips only sees neither. These functions make such copies of a
training clip at the analysis rate, deterministically for a given random generator:

* `telephone`: resample to 8 kHz, band-pass 300-3,400 Hz (4th-order Butterworth), 8-bit mu-law
  (G.711-style) quantisation and back, then up to the analysis rate again as the decoder would.
* `random_crop`: a 2-4 s excerpt at a uniformly random position (the whole clip when shorter).
* `noise_floor`: the clip under a steady white noise floor (-65 dBFS): evaluation only (`evaluate`,
  `train`'s held-out report), where it measures how much a noise floor costs a model trained on studio
  recordings (docs/MODELS.md, round 5).
* `speed`: the clip played `factor` times faster (tempo and pitch together, as a tape or a resampler
  would: ×0.9 and ×1.1), which makes new voices out of the training speakers' (Ko et al., 2015, for speech
  recognition), and their telephone copies. docs/MODELS.md: +5.3 points per file, +2.2 speaker-adaptive
  in the nested CV, telephone copies +5.5 / +3.2.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

TEL_SR = 8000
TEL_BAND_HZ = (300.0, 3400.0)
MU = 255.0


@lru_cache(maxsize=4)
def _band_sos(sr: int) -> np.ndarray:
    from scipy.signal import butter

    return butter(4, TEL_BAND_HZ, btype="bandpass", fs=sr, output="sos")  # type: ignore[no-any-return]


def mu_law(y: np.ndarray) -> np.ndarray:
    """8-bit mu-law encode and decode (values clipped to [-1, 1])."""
    x = np.clip(y, -1.0, 1.0)
    code = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    q = np.round((code + 1.0) * 127.5) / 127.5 - 1.0  # 256 levels
    return (np.sign(q) * np.expm1(np.abs(q) * np.log1p(MU)) / MU).astype(np.float32)  # type: ignore[no-any-return]


def telephone_8k(y: np.ndarray, sr: int) -> np.ndarray:
    """A telephone-channel copy at 8 kHz: band-limited to 300-3,400 Hz and mu-law companded."""
    import soxr
    from scipy.signal import sosfilt

    y8 = soxr.resample(np.asarray(y, dtype=np.float32), sr, TEL_SR) if sr != TEL_SR else y
    y8 = sosfilt(_band_sos(TEL_SR), y8).astype(np.float32)
    return mu_law(y8)


def telephone(y: np.ndarray, sr: int) -> np.ndarray:
    """`telephone_8k`, brought back to `sr` (what decoding an 8 kHz file at the analysis rate gives)."""
    import soxr

    return soxr.resample(telephone_8k(y, sr), TEL_SR, sr, quality="HQ").astype(np.float32)  # type: ignore[no-any-return]


def random_crop(
    y: np.ndarray, sr: int, rng: np.random.Generator, min_s: float = 2.0, max_s: float = 4.0
) -> np.ndarray:
    """A random excerpt of min_s-max_s seconds (the whole clip when it is shorter)."""
    n = int(round(rng.uniform(min_s, max_s) * sr))
    if n >= len(y):
        return y
    start = int(rng.integers(0, len(y) - n + 1))
    return y[start : start + n]


def speed(y: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """The clip `factor` times faster (shorter, and higher by the same ratio), at the same rate `sr`."""
    import soxr

    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return soxr.resample(np.asarray(y, dtype=np.float32), int(round(sr * factor)), sr).astype(np.float32)  # type: ignore[no-any-return]


#: the level of `noise_floor`'s white noise (RMS, dBFS): a quiet line or room (the pipeline's voice gate
#: counts frames under -55 dBFS as silence)
NOISE_FLOOR_DBFS = -65.0


def noise_floor(y: np.ndarray, sr: int, dbfs: float = NOISE_FLOOR_DBFS, seed: int = 0) -> np.ndarray:
    """The clip under a steady white noise floor at `dbfs` (RMS), deterministic for `seed`: how a recording
    with a noise floor differs from the studio silence of RAVDESS (evaluation; not a training copy)."""
    rng = np.random.default_rng(seed)
    noise = (10 ** (dbfs / 20) * rng.standard_normal(len(y))).astype(np.float32)
    return (np.asarray(y, dtype=np.float32) + noise).astype(np.float32)  # type: ignore[no-any-return]


#: the copies evaluation can score instead of a file (`copy=` of features/clip.py): name -> (y, sr) -> y
EVAL_COPIES = {"telephone": telephone, "noise": noise_floor}

#: the speed factors of the speed copies
SPEEDS = (0.9, 1.1)

#: the copies `copies` makes of a training clip, after the clip itself (row order of training's matrices)
VARIANTS = (
    "file",
    "telephone",
    "crop",
    "crop",
    "telephone_crop",
    "speed_0.9",
    "speed_1.1",
    "telephone_speed_0.9",
    "telephone_speed_1.1",
)


def file_seed(seed: int, uri: str) -> int:
    """A file's own random seed: the run's seed and the file's name, so its copies are the same whichever
    worker, batch or order it is featurised in."""
    import zlib

    return seed * 100_003 + zlib.crc32(uri.encode())


def copies(y: np.ndarray, sr: int, seed: int) -> list[np.ndarray]:
    """The augmented copies of a clip (VARIANTS[1:]): a telephone copy, two random crops of the clip, a
    crop of the telephone copy, the clip at 0.9 and 1.1 times its speed and those two as telephone
    copies; deterministic for `seed`."""
    rng = np.random.default_rng(seed)
    tel = telephone(y, sr)
    crops = [random_crop(y, sr, rng), random_crop(y, sr, rng), random_crop(tel, sr, rng)]
    fast = [speed(y, sr, f) for f in SPEEDS]
    return [tel, *crops, *fast, *(telephone(f, sr) for f in fast)]
