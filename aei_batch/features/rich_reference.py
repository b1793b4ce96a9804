"""The `rich_audio` and `logmel_patch` computations as they were before the single-pass rewrite.

Kept, unchanged, as the reference the fast functions in `aei_batch.features.rich` are tested against
(tests/unit/test_features_rich.py) and as the "before" of bench/bench_features.py: a difference beyond
the stated tolerance would silently change every prediction of every model trained on these sets.
This module registers nothing and is not imported on the scoring path; it uses librosa.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aei_batch.features.rich import PATCH_PARAMS, RICH_PARAMS

_EPS = 1e-10
_PCT = (10, 50, 90)


def _stft_power(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    import librosa

    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True)) ** 2


def active_frames(power_db: np.ndarray, top_db: float) -> np.ndarray:
    """Boolean mask of frames within `top_db` of the loudest frame (at least 3 frames, all when silent)."""
    mask = power_db >= power_db.max() - top_db
    if mask.sum() < 3:
        mask = np.ones_like(mask, dtype=bool)
    return mask


def _summary(m: np.ndarray) -> np.ndarray:
    """(features, frames) -> mean, std, p10, p50, p90, skew per feature (block-major)."""
    mean = m.mean(axis=1)
    std = m.std(axis=1)
    pct = np.percentile(m, _PCT, axis=1)
    skew = (((m - mean[:, None]) / (std[:, None] + 1e-6)) ** 3).mean(axis=1)
    return np.concatenate([mean, std, pct.reshape(-1), np.clip(skew, -20, 20)])


def _delta(m: np.ndarray, width: int) -> np.ndarray:
    import librosa

    if m.shape[1] < 3:
        return np.zeros_like(m)
    w = min(width, m.shape[1] if m.shape[1] % 2 else m.shape[1] - 1)
    return librosa.feature.delta(m, width=max(3, w), order=1, mode="interp" if m.shape[1] >= w else "nearest")


def yin_f0(
    y: np.ndarray, sr: int, *, frame: int, hop: int, fmin: float, fmax: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised YIN: per frame, F0 in Hz and the cumulative-mean-normalised dip (aperiodicity, 0-1).

    Frames are centred like librosa's STFT (so index t matches the spectral frames). Unvoiced frames
    (no dip under `threshold`) get F0 0 and their minimum dip as aperiodicity.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    tau_min, tau_max = max(2, int(sr / fmax)), min(frame - 1, int(sr / fmin))
    yp = np.pad(y.astype(np.float64), (frame // 2, frame // 2 + frame))
    n_frames = 1 + len(y) // hop
    frames = sliding_window_view(yp, frame)[: n_frames * hop : hop][:n_frames]
    w = frame - tau_max  # integration window
    fft_n = 1 << int(np.ceil(np.log2(2 * frame)))
    spec = np.fft.rfft(frames, fft_n, axis=1)
    spec_w = np.fft.rfft(frames[:, :w], fft_n, axis=1)
    corr = np.fft.irfft(spec * np.conj(spec_w), fft_n, axis=1)[:, : tau_max + 1]  # sum_j x[j] x[j+tau], j<w
    sq = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    energy0 = sq[:, w] - sq[:, 0]
    taus = np.arange(tau_max + 1)
    energy_tau = sq[:, taus + w] - sq[:, taus]
    diff = np.maximum(energy0[:, None] + energy_tau - 2 * corr, 0.0)
    cum = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / (cum + _EPS)
    region = cmnd[:, tau_min : tau_max + 1]
    below = region < threshold
    # first local dip under the threshold: first index under it, then walk to its local minimum
    first = np.where(below.any(axis=1), below.argmax(axis=1), region.argmin(axis=1))
    idx = first.copy()
    rows_ = np.arange(len(idx))
    for _ in range(region.shape[1]):  # walk downhill to the bottom of the dip
        nxt = np.minimum(idx + 1, region.shape[1] - 1)
        step = region[rows_, nxt] < region[rows_, idx]
        if not step.any():
            break
        idx = np.where(step, nxt, idx)
    dip = region[np.arange(len(idx)), idx]
    tau = (idx + tau_min).astype(np.float64)
    # parabolic interpolation around the chosen lag
    left = cmnd[np.arange(len(idx)), np.clip(tau.astype(int) - 1, 0, tau_max)]
    right = cmnd[np.arange(len(idx)), np.clip(tau.astype(int) + 1, 0, tau_max)]
    denom = left - 2 * dip + right
    shift = np.where(np.abs(denom) > _EPS, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    tau = tau + np.clip(shift, -1, 1)
    voiced = below.any(axis=1) & (energy0 > _EPS)
    f0 = np.where(voiced, sr / np.maximum(tau, 1.0), 0.0)
    return f0, np.clip(dip, 0.0, 1.0)


def _pitch_stats(f0: np.ndarray, active: np.ndarray, hop_s: float) -> np.ndarray:
    voiced = (f0 > 0) & active
    n_active = max(1, int(active.sum()))
    if voiced.sum() < 3:
        return np.concatenate([[0.0] * 9, [voiced.sum() / n_active]])
    st = 12 * np.log2(f0[voiced] / 55.0)  # semitones above A1
    t = np.flatnonzero(voiced) * hop_s
    slope = np.polyfit(t, st, 1)[0] if np.ptp(t) > 0 else 0.0
    dst = np.abs(np.diff(st))
    dst = dst[dst < 4]  # ignore octave jumps and gaps
    p5, p50, p95 = np.percentile(st, (5, 50, 95))
    return np.array(
        [
            st.mean(),
            st.std(),
            p5,
            p50,
            p95,
            p95 - p5,
            slope,
            dst.mean() if len(dst) else 0.0,
            dst.std() if len(dst) else 0.0,
            voiced.sum() / n_active,
        ]
    )


def _analysis(y: np.ndarray, sr: int, p: dict[str, Any]) -> dict[str, np.ndarray]:
    """Shared intermediate representations of one clip: computed once, used by every block."""
    import librosa

    if sr != p["sr"]:
        raise ValueError(f"rich features are defined at {p['sr']} Hz, got {sr}")
    y = np.asarray(y, dtype=np.float32)
    n_fft, hop = p["n_fft"], p["hop_length"]
    power = _stft_power(y, n_fft, hop)
    mel_fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=p["n_mels"], fmax=p["fmax"])
    mel = mel_fb @ power
    logmel = 10 * np.log10(np.maximum(mel, _EPS))
    frame_db = 10 * np.log10(np.maximum(power.sum(axis=0), _EPS))
    return {
        "power": power,
        "logmel": logmel,
        "frame_db": frame_db,
        "active": active_frames(frame_db, p["active_db"]),
    }


def rich_audio(y: np.ndarray, sr: int) -> np.ndarray:
    """The `rich_audio` vector as computed before the single-pass rewrite (the reference)."""
    import librosa
    import scipy.fft

    p = RICH_PARAMS
    y = np.asarray(y, dtype=np.float32)
    if len(y) < p["n_fft"]:  # very short clips: pad so every block sees the same frames
        y = np.pad(y, (0, p["n_fft"] - len(y)))
    a = _analysis(y, sr, p)
    power, logmel, active = a["power"], a["logmel"], a["active"]
    n_fft, hop = p["n_fft"], p["hop_length"]
    mfcc = scipy.fft.dct(logmel, axis=0, type=2, norm="ortho")[: p["n_mfcc"]]
    d1 = _delta(mfcc, p["delta_width"])
    mag = np.sqrt(power)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft, hop_length=hop)
    total = power.sum(axis=0) + _EPS
    centroid = (freqs[:, None] * power).sum(axis=0) / total
    bandwidth = np.sqrt(((freqs[:, None] - centroid) ** 2 * power).sum(axis=0) / total)
    rolloff = freqs[np.minimum((np.cumsum(power, axis=0) < 0.85 * total).sum(axis=0), len(freqs) - 1)]
    flatness = np.exp(np.log(power + _EPS).mean(axis=0)) / (power.mean(axis=0) + _EPS)
    yy = np.pad(y, (n_fft // 2, n_fft // 2))
    zc = np.abs(np.diff(np.signbit(yy).astype(np.int8))).astype(np.float64)
    zcr = np.add.reduceat(zc, np.arange(0, len(zc), hop))[: power.shape[1]] / hop
    zcr = np.pad(zcr, (0, power.shape[1] - len(zcr)))
    f0, aperiodic = yin_f0(
        y, sr, frame=n_fft, hop=hop, fmin=p["f0_min"], fmax=p["f0_max"], threshold=p["yin_threshold"]
    )
    f0, aperiodic = f0[: power.shape[1]], aperiodic[: power.shape[1]]
    spectral = np.vstack(
        [centroid / 1000, bandwidth / 1000, rolloff / 1000, flatness, zcr, a["frame_db"], aperiodic]
    )
    act = active
    dur = act.sum() * hop / sr
    span = np.flatnonzero(act)
    return np.concatenate(
        [
            _summary(mfcc[:, act]),
            d1[:, act].std(axis=1),
            np.abs(d1[:, act]).mean(axis=1),
            logmel[:, act].mean(axis=1),
            logmel[:, act].std(axis=1),
            contrast[:, act].mean(axis=1),
            contrast[:, act].std(axis=1),
            _summary(spectral[:, act]),
            _pitch_stats(f0, act, hop / sr),
            [dur, (span[-1] - span[0] + 1) * hop / sr, a["frame_db"].max()],
            _voicing_blocks(mfcc, f0, act),
            _delta(logmel, p["delta_width"])[:, act].std(axis=1),
            _thirds(mfcc[:N_THIRDS_MFCC], act),
            [_peak_rate(a["frame_db"], act, hop / sr)],
        ]
    ).astype(np.float32)


N_THIRDS_MFCC = 13


def _voicing_blocks(mfcc: np.ndarray, f0: np.ndarray, act: np.ndarray) -> np.ndarray:
    """MFCC means over voiced frames and over active unvoiced frames (active mean when too few)."""
    voiced = act & (f0 > 0)
    unvoiced = act & (f0 <= 0)
    fallback = mfcc[:, act].mean(axis=1)
    v = mfcc[:, voiced].mean(axis=1) if voiced.sum() >= 3 else fallback
    u = mfcc[:, unvoiced].mean(axis=1) if unvoiced.sum() >= 3 else fallback
    return np.concatenate([v, u])


def _thirds(m: np.ndarray, act: np.ndarray) -> np.ndarray:
    """Means over the first, middle and last third of the active frames (a coarse contour)."""
    idx = np.flatnonzero(act)
    parts = np.array_split(idx, 3)
    return np.concatenate([m[:, p].mean(axis=1) if len(p) else m[:, idx].mean(axis=1) for p in parts])


def _peak_rate(frame_db: np.ndarray, act: np.ndarray, hop_s: float) -> float:
    """Loudness peaks per second of active speech: a syllable-rate proxy."""
    smooth = np.convolve(frame_db, np.ones(5) / 5, mode="same")
    peaks = (smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:]) & act[1:-1]
    peaks &= smooth[1:-1] > smooth[act].max() - 25
    return float(peaks.sum() / max(act.sum() * hop_s, 0.1))


def logmel_patch(y: np.ndarray, sr: int) -> np.ndarray:
    """The `logmel_patch` image as computed before the single-pass rewrite (the reference)."""
    p = PATCH_PARAMS
    a = _analysis(y, sr, {**p, "sr": p["sr"]})
    logmel = a["logmel"]
    logmel = np.maximum(logmel - logmel.max(), p["floor_db"])
    span = np.flatnonzero(a["active"])
    centre = (span[0] + span[-1]) // 2
    n = p["frames"]
    start = centre - n // 2
    out = np.full((p["n_mels"], n), p["floor_db"], dtype=np.float32)
    lo, hi = max(0, start), min(logmel.shape[1], start + n)
    out[:, lo - start : hi - start] = logmel[:, lo:hi]
    return ((out - p["floor_db"] / 2) / (-p["floor_db"] / 2)).reshape(-1)  # roughly [-1, 1]
