"""Audio feature sets. Each is documented in docs/FEATURES.md.

`seed_mfcc157` reproduces the 2019 seed study exactly: librosa at 22,050 Hz, 13 MFCCs with deltas and
delta-deltas, each coefficient summarised over frames by min, max, standard deviation and mean
(3 blocks x 4 statistics x 13 = 156 values, block-major: mfcc[min x13, max x13, std x13, mean x13],
then delta, then delta2), plus the mean RMS energy: 157 values.
"""

from __future__ import annotations

import numpy as np

from aei_batch.features.base import FeatureSet

_STATS = ("min", "max", "std", "mean")


def _stats(m: np.ndarray) -> np.ndarray:
    """(coeffs, frames) -> [min.., max.., std.., mean..] over frames."""
    return np.concatenate([m.min(axis=1), m.max(axis=1), m.std(axis=1), m.mean(axis=1)])


def _stat_names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}_{i}_{s}" for s in _STATS for i in range(n)]


SEED_PARAMS = {"sr": 22050, "n_mfcc": 13, "n_fft": 2048, "hop_length": 512, "delta_width": 9}


def _seed_width(frames: int) -> tuple[int, str]:
    """The seed's delta window: 9 frames, or the largest odd count that fits a short clip (at least 3)."""
    width = max(3, min(SEED_PARAMS["delta_width"], frames - (1 - frames % 2)))
    return width, "interp" if frames >= width else "nearest"


def seed_mfcc157(y: np.ndarray, sr: int) -> np.ndarray:
    """The seed study's 157 MFCC statistics (see module docstring), computed by aei_batch.features.dsp:
    the same numbers as `seed_mfcc157_librosa` (to float32 rounding) at about a third of its cost."""
    from aei_batch.features import dsp

    p = SEED_PARAMS
    if sr != p["sr"]:
        raise ValueError(f"seed_mfcc157 is defined at {p['sr']} Hz, got {sr}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    frames = dsp.centred_frames(y, p["n_fft"], p["hop_length"])
    width, mode = _seed_width(frames.shape[0])
    if mode != "interp":  # under 3 frames (< 70 ms): too short to matter, let librosa do it
        return seed_mfcc157_librosa(y, sr)
    mfcc = dsp.mfcc_from_power(dsp.power_spectrum(frames), sr, p["n_fft"], 128, p["n_mfcc"])
    d1 = dsp.delta(mfcc, width, 1)
    d2 = dsp.delta(mfcc, width, 2)
    rms = dsp.frame_rms(y, p["n_fft"], p["hop_length"])
    return np.concatenate([_stats(mfcc), _stats(d1), _stats(d2), [float(rms.mean())]]).astype(np.float32)


def seed_mfcc157_librosa(y: np.ndarray, sr: int) -> np.ndarray:
    """The seed features as the seed study computed them, with librosa's functions (the reference the
    fast `seed_mfcc157` is tested against, and what bench/bench_audio.py's seed-style loop runs)."""
    import librosa

    p = SEED_PARAMS
    if sr != p["sr"]:
        raise ValueError(f"seed_mfcc157 is defined at {p['sr']} Hz, got {sr}")
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=p["n_mfcc"], n_fft=p["n_fft"], hop_length=p["hop_length"])
    width, mode = _seed_width(mfcc.shape[1])
    d1 = librosa.feature.delta(mfcc, width=width, order=1, mode=mode)
    d2 = librosa.feature.delta(mfcc, width=width, order=2, mode=mode)
    rms = librosa.feature.rms(y=y, frame_length=p["n_fft"], hop_length=p["hop_length"])
    return np.concatenate([_stats(mfcc), _stats(d1), _stats(d2), [float(rms.mean())]]).astype(np.float32)


SEED = FeatureSet(
    name="seed_mfcc157",
    version=1,
    params=SEED_PARAMS,
    names=tuple(
        _stat_names("mfcc", 13) + _stat_names("mfcc_d1", 13) + _stat_names("mfcc_d2", 13) + ["rms_mean"]
    ),
    fn=seed_mfcc157,
    description="The 2019 seed study's set: 13 MFCC + deltas + delta-deltas x (min,max,std,mean) + RMS.",
)

#: The sets this module defines (collected by aei_batch.features.registry).
FEATURE_SETS = (SEED,)
