"""Decode one file and extract one feature vector, in one call: what the decode watchdog's child runs.

Running the features next to the decoder means a scored file crosses the pipe between the worker and
its decoder child as its path (a local file, read by the child) or its compressed bytes (an S3 object)
in and 157 (or 701) floats out, instead of its whole decoded waveform back (about 330 KB for a 3.7 s
clip at 22,050 Hz as float32). The worker then only loads the model and predicts; the child owns
reading local files, decoding and features, all under the decode timeout.
"""

from __future__ import annotations

import io
import os

import numpy as np

from aei_batch.errors import ErrorCode, FileError
from aei_batch.features.base import FeatureSet
from aei_batch.features.registry import get_feature_set


def extract_checked(fs: FeatureSet, y: np.ndarray, sr: int) -> np.ndarray:
    """`fs.extract`, with its failures and non-finite results as FEATURE_FAILED file errors."""
    try:
        vec = fs.extract(y, sr)
    except Exception as exc:  # noqa: BLE001 - one file's failure, reported on its row
        raise FileError(ErrorCode.FEATURE_FAILED, f"{type(exc).__name__}: {exc}") from None
    if not np.isfinite(vec).all():
        raise FileError(ErrorCode.FEATURE_FAILED, "features contain NaN or infinite values")
    return vec


def decode_and_extract(
    data: bytes,
    name: str,
    feature_set: str,
    *,
    sr: int,
    max_duration_s: float | None,
    augment_seed: int | None = None,
    copy: str | None = None,
) -> tuple[np.ndarray, float]:
    """Decode `data` (the bytes of file `name`) at `sr` and extract `feature_set`: (vector, duration s).
    `copy="telephone"` / `"noise"`: the features of its telephone copy or of the file under a noise floor
    instead (features/augment.py `EVAL_COPIES`; evaluation).
    With `augment_seed` (training), the vector of the clip and of each of its augmented copies
    (features/augment.py `copies`), stacked, from the one decode: (len(VARIANTS), dim)."""
    from aei_batch.decode.audio import decode_audio

    clip = decode_audio(data, name, sr=sr, max_duration_s=max_duration_s)
    fs = get_feature_set(feature_set)
    if copy is not None:
        from aei_batch.features.augment import EVAL_COPIES

        if copy not in EVAL_COPIES:
            raise ValueError(f"unknown copy {copy!r}")
        return extract_checked(fs, EVAL_COPIES[copy](clip.y, clip.sr), clip.sr), clip.duration_s
    vec = extract_checked(fs, clip.y, clip.sr)
    if augment_seed is not None:
        from aei_batch.features.augment import copies

        more = [extract_checked(fs, c, clip.sr) for c in copies(clip.y, clip.sr, augment_seed)]
        vec = np.stack([vec, *more])
    return vec, clip.duration_s


def read_local(path: str, max_bytes: int | None) -> bytes:
    """A local file's bytes, at most `max_bytes`; per-file problems raise FileError (READ_FAILED,
    FILE_TOO_LARGE, NOT_REGULAR_FILE: a FIFO or device fails at once, never blocks or reads to the limit)."""
    from aei_batch.io.local import read_local as read

    return read(path, max_bytes)


def check_readable(path: str) -> None:
    """The per-file errors of a local file now (READ_FAILED, NOT_REGULAR_FILE); it is read later."""
    from aei_batch.io.local import open_regular

    os.close(open_regular(path, None))


def read_decode_and_extract(
    path: str,
    name: str,
    feature_set: str,
    *,
    sr: int,
    max_duration_s: float | None,
    max_bytes: int | None,
    augment_seed: int | None = None,
    copy: str | None = None,
) -> tuple[np.ndarray, float]:
    """`decode_and_extract` of a local file that this process reads itself: in the decoder child, the
    file's bytes then never cross the pipe from the worker (one read from the page cache instead of a
    read, a pickle, a pipe write and a pipe read: 0.4 ms of a core per RAVDESS file, docs/PERFORMANCE.md)."""
    data = read_local(path, max_bytes)
    return decode_and_extract(
        data, name, feature_set, sr=sr, max_duration_s=max_duration_s, augment_seed=augment_seed, copy=copy
    )


def warm_up_features(name: str = "seed_mfcc157") -> None:
    """Run a feature set once on a short tone: its lazy imports and first-call compilation happen now."""
    y = np.sin(np.linspace(0, 2000, 22050)).astype(np.float32) * 0.1
    get_feature_set(name).extract(y, 22050)


def watchdog_warm_up() -> None:
    """A new decoder child (runtime/watchdog.py) runs this once, outside the per-file clock: the codecs'
    imports and the common feature kernels, so that the first file's timeout measures that file only."""
    import av  # noqa: F401 - imported for its start-up cost (the fallback decoder)
    import soundfile as sf

    import aei_batch.io.local  # noqa: F401 - read_local's module, so its import is not on file 1's clock

    buf = io.BytesIO()
    tone = np.sin(np.arange(22050, dtype=np.float32) / 10) * 0.1
    sf.write(buf, tone, 22050, format="WAV", subtype="PCM_16")
    decode_and_extract(buf.getvalue(), "warm.wav", "seed_mfcc157", sr=22050, max_duration_s=None)
