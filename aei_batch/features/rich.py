"""Richer audio feature sets (documented in docs/FEATURES.md).

`rich_audio` summarises one short-time analysis of the clip: a single STFT is computed and every
spectral feature (log-mel, MFCC, spectral contrast, centroid, bandwidth, roll-off, flatness, RMS) is
derived from it; pitch comes from a vectorised YIN-style difference function on the same frames.
Statistics are taken over the *active* frames only (within `active_db` of the loudest frame), so the
silence RAVDESS puts before and after each sentence does not dilute them.

`logmel_patch` is a fixed-size log-mel image (mel bands x frames, centred on the active region) for
the Keras CNN; flattened to a vector so it travels through the same feature-table machinery.

Both are pure functions of (y, sr) and return finite values on silence and very short clips.

How it is computed (the cost, not the definition): every per-frame quantity (power spectrum, log-mel,
frame level, spectral shape, contrast, YIN) is computed in one pass over the frames, in blocks of
`_BLOCK`, in scratch buffers that each thread allocates once and reuses (`_Workspace`): the code this
replaced allocated several fresh multi-MiB arrays per clip, and on this project's machines their
page faults cost 15-25% of a clip's time. One FFT of each unwindowed frame serves both the spectrum
(Hann window applied in the frequency domain, in float64 like librosa's STFT) and YIN. No librosa is
imported. The numbers are the previous, librosa-based implementation's (kept as
`aei_batch.features.rich_reference`) to float rounding: tests/unit/test_features_rich.py holds every
column within 1e-4 of it, and the feature sets' names, versions and hashes are unchanged.
docs/PERFORMANCE.md has the figures.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import Any

import numpy as np

from aei_batch.features import dsp
from aei_batch.features.base import FeatureSet

RICH_PARAMS: dict[str, Any] = {
    "sr": 22050,
    "n_fft": 1024,
    "hop_length": 256,
    "n_mels": 64,
    "fmax": 8000.0,
    "n_mfcc": 40,
    "active_db": 40.0,
    "f0_min": 65.0,
    "f0_max": 500.0,
    "yin_threshold": 0.2,
    "delta_width": 9,
}
_EPS = 1e-10
_PCT = (10, 50, 90)
_BLOCK = 128  # frames per block: fewer, larger numpy calls; the workspace stays at a few MiB
_KEEP_BYTES = 4 << 20  # the largest scratch buffer a thread keeps between clips
_CONTRAST = (200.0, 6, 0.02)  # librosa's spectral_contrast defaults: fmin, n_bands, quantile


class _Workspace(threading.local):
    """Per-thread scratch buffers, allocated on first use and reused by every later block and clip.
    A buffer over `_KEEP_BYTES` (the whole-signal ones of a clip over about 23 s) is not kept: a long
    clip must not leave its memory held by the thread."""

    def __init__(self) -> None:
        self.bufs: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape)
        if size * np.dtype(dtype).itemsize > _KEEP_BYTES:
            return np.empty(shape, dtype=dtype)
        buf = self.bufs.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self.bufs[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


_WS = _Workspace()


@lru_cache(maxsize=4)
def _mel_fb(sr: int, n_fft: int, n_mels: int, fmax: float) -> np.ndarray:
    """`librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)`: (n_mels, bins) float32."""
    return np.ascontiguousarray(dsp.mel_basis_t(sr, n_fft, n_mels, fmax).T)


@lru_cache(maxsize=4)
def _freqs(sr: int, n_fft: int) -> np.ndarray:
    return np.fft.rfftfreq(n_fft, 1.0 / sr)  # type: ignore[no-any-return]


def _frames64(y: np.ndarray, frame: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """`y` zero-padded by frame // 2 on each side in float64, and the (1 + len(y) // hop, frame)
    read-only view of its frames: the frame grid of librosa's centred STFT, shared by the spectrum
    and the pitch. Both live in this thread's workspace: valid until the next call."""
    pad = frame // 2
    padded = _WS.get("padded", (len(y) + 2 * pad,), np.float64)
    padded[:pad] = 0.0
    padded[pad : pad + len(y)] = y
    padded[pad + len(y) :] = 0.0
    return padded, np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop]


def _lag_energies(padded: np.ndarray, frame: int, hop: int, w: int, n_tau: int) -> np.ndarray:
    """(frames, n_tau) read-only view: for frame t and lag tau, the energy of the `w` samples from
    tau on, sum_{tau <= j < tau + w} x_t[j]^2, from one running sum of squares over the whole signal."""
    run = _WS.get("run", (len(padded) + 1,), np.float64)
    run[0] = 0.0
    np.cumsum(np.square(padded, out=run[1:]), out=run[1:])
    energy = np.subtract(run[w:], run[:-w], out=_WS.get("energy", (len(run) - w,), np.float64))
    n_frames = 1 + (len(padded) - frame) // hop
    return np.lib.stride_tricks.sliding_window_view(energy, n_tau)[::hop][:n_frames]


def floor_level(power_db: np.ndarray, rule: dict[str, float], hop_s: float) -> float | None:
    """The level (dB) of the clip's steady floor, or None when it has none: its 10th-percentile frame
    level, when the frames within `spread_db` of it hold a run of at least `min_run_s`. A pause of that
    length sits at the floor; in a stretch of speech with no pause, the quietest tenth is quiet speech,
    which dips to that level only briefly (100 RAVDESS clips trimmed to their speech: 3 % hold such a run
    of 0.4 s; all their telephone and noise-floor copies hold one; bench/study_floor_rule.py)."""
    p10 = float(np.percentile(power_db, 10))
    starts, ends = dsp.true_runs(power_db <= p10 + rule["spread_db"])
    longest = int((ends - starts).max()) if starts.size else 0
    return p10 if longest * hop_s >= rule["min_run_s"] else None


def active_frames(
    power_db: np.ndarray, top_db: float, floor: dict[str, float] | None = None, hop_s: float = 0.0
) -> np.ndarray:
    """Boolean mask of frames within `top_db` of the loudest frame (at least 3 frames, all when silent).

    With a `floor` rule (`voice_audio` v2, `FLOOR_RULE`), a clip that has a steady floor (`floor_level`)
    also leaves out the frames less than `margin_db` above it, without raising the threshold above
    `range_db` under the peak: a noise floor or a telephone channel's quantisation noise sits 30-50 dB
    under the speech, within `top_db`, and would otherwise count as speech."""
    peak = power_db.max()
    threshold = peak - top_db  # in the array's dtype, as v1 always computed it: v1's frames to the bit
    if floor is not None:
        level = floor_level(power_db, floor, hop_s)
        if level is not None:
            threshold = max(threshold, min(level + floor["margin_db"], float(peak) - floor["range_db"]))
    mask = power_db >= threshold
    if mask.sum() < 3:
        mask = np.ones_like(mask, dtype=bool)
    return mask


def percentiles(m: np.ndarray, pct: tuple[int, ...]) -> np.ndarray:
    """`np.percentile(m, pct, axis=-1)` (linear interpolation), to the bit, from one vectorised sort
    of each row; NumPy's own partitions the rows again for every call and costs several times more.
    Finite values only."""
    ordered = np.sort(m, axis=-1)
    n = ordered.shape[-1]
    rows = []
    for p in pct:
        virtual = (n - 1) * (p / 100)
        lo = min(math.floor(virtual), n - 1)
        hi = min(lo + 1, n - 1)
        gamma = virtual - math.floor(virtual)
        a, b = ordered[..., lo], ordered[..., hi]
        diff = b - a
        rows.append(a + diff * gamma if gamma < 0.5 else b - diff * (1 - gamma))
    return np.stack(rows)


def _summary(m: np.ndarray) -> np.ndarray:
    """(features, frames) -> mean, std, p10, p50, p90, skew per feature (block-major)."""
    mean = m.mean(axis=1)
    std = m.std(axis=1)
    pct = percentiles(m, _PCT)
    z = (m - mean[:, None]) / (std[:, None] + 1e-6)
    skew = (z * z * z).mean(axis=1)
    return np.concatenate([mean, std, pct.reshape(-1), np.clip(skew, -20, 20)])


def _summary_names(prefix: str, n: int) -> list[str]:
    stats = ["mean", "std"] + [f"p{p}" for p in _PCT] + ["skew"]
    return [f"{prefix}_{i}_{s}" for s in stats for i in range(n)]


def _power_block(spec: np.ndarray) -> np.ndarray:
    """|STFT|^2 from the rFFT `spec` (b, bins) of a block of unwindowed float64 frames: the periodic
    Hann window of librosa's STFT applied in the frequency domain (X_w[k] = X[k] / 2 - (X[k - 1] +
    X[k + 1]) / 4, exact but for float64 rounding), then re^2 + im^2 rounded to float32 (librosa rounds
    the spectrum to complex64 first: the two differ by float32 rounding). A (b, bins) float32
    workspace view, valid until the next block."""
    b, bins = spec.shape
    windowed = _WS.get("windowed", (b, bins), np.complex128)
    np.add(spec[:, :-2], spec[:, 2:], out=windowed[:, 1:-1])
    windowed[:, 0] = 2 * spec[:, 1].real  # X[-1] = conj(X[1])
    windowed[:, -1] = 2 * spec[:, -2].real  # X[n/2 + 1] = conj(X[n/2 - 1])
    windowed *= -0.5
    windowed += spec
    windowed *= 0.5  # = X / 2 - (X[k - 1] + X[k + 1]) / 4: scaling by powers of two is exact
    parts = windowed.view(np.float64).reshape(b, bins, 2)
    np.square(parts, out=parts)
    power = _WS.get("power", (b, bins), np.float32)
    np.add(parts[:, :, 0], parts[:, :, 1], out=power, casting="same_kind")
    return power


@lru_cache(maxsize=4)
def _contrast_bands(
    sr: int, n_fft: int, fmin: float, n_bands: int, quantile: float
) -> tuple[tuple[int, int, int], ...]:
    """The bands of `librosa.feature.spectral_contrast`: (first bin, end bin, bins averaged) each."""
    freq = _freqs(sr, n_fft)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    bands = []
    for k, (f_low, f_high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        idx = np.flatnonzero((freq >= f_low) & (freq <= f_high))
        lo = int(idx[0]) - 1 if k > 0 else int(idx[0])  # every band but the first reaches one bin down
        hi = len(freq) if k == n_bands else int(idx[-1]) + 1  # the last one runs to Nyquist
        n_avg = max(1, int(np.rint(quantile * (hi - lo))))
        bands.append((lo, hi if k == n_bands else hi - 1, n_avg))  # all but the last drop their top bin
    return tuple(bands)


def _contrast_block(
    mag: np.ndarray, bands: tuple[tuple[int, int, int], ...], valley: np.ndarray, peak: np.ndarray
) -> None:
    """Per band of a (b, bins) magnitude block: the mean of its `n_avg` lowest and of its `n_avg` highest
    bins into valley[k] and peak[k], as librosa computes them (from the band sorted ascending; NumPy's
    vectorised sort is several times faster than np.partition here), or by min / max for one bin."""
    for k, (lo, hi, n_avg) in enumerate(bands):
        band = mag[:, lo:hi]
        if n_avg == 1:
            band.min(axis=1, out=valley[k])
            band.max(axis=1, out=peak[k])
            continue
        ordered = np.sort(band, axis=1)
        valley[k] = ordered[:, :n_avg].mean(axis=1)
        peak[k] = ordered[:, -n_avg:].mean(axis=1)


def _power_to_db(s: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """librosa's `power_to_db(s)` with its defaults (ref 1, amin 1e-10, floored `top_db` under the peak)."""
    db = 10.0 * np.log10(np.maximum(1e-10, s))
    db -= 10.0 * np.log10(np.maximum(1e-10, 1.0))
    return np.maximum(db, db.max() - top_db)  # type: ignore[no-any-return]


def _yin_lags(sr: int, frame: int, fmin: float, fmax: float) -> tuple[int, int, int]:
    """YIN's lag range and integration window: (tau_min, tau_max, w)."""
    tau_min, tau_max = max(2, int(sr / fmax)), min(frame - 1, int(sr / fmin))
    return tau_min, tau_max, frame - tau_max


def _yin_block(
    frames: np.ndarray,
    spec: np.ndarray,
    energies: np.ndarray,
    sr: int,
    fmin: float,
    fmax: float,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """YIN on a block of (b, frame) float64 frames, given their rFFT `spec` (b, frame // 2 + 1; used as
    scratch) and their lag energies (`_lag_energies`): (F0 in Hz, dip) per frame; see `yin_f0`."""
    b, frame = frames.shape
    tau_min, tau_max, w = _yin_lags(sr, frame, fmin, fmax)
    n_tau = tau_max + 1
    # corr[tau] = sum_{j<w} x[j] x[j+tau]: a circular correlation of length `frame` does not wrap,
    # since j + tau < w + tau_max = frame
    head = _WS.get("head", (b, frame), np.float64)
    head[:, :w] = frames[:, :w]
    head[:, w:] = 0.0
    spec_w = np.fft.rfft(head, axis=1, out=_WS.get("spec_w", spec.shape, np.complex128))
    spec *= np.conjugate(spec_w, out=spec_w)
    corr = np.fft.irfft(spec, frame, axis=1, out=_WS.get("corr", (b, frame), np.float64))[:, :n_tau]
    # the difference function: energy at lag 0 + energy at lag tau - 2 corr
    energy0 = energies[:, 0]
    diff = np.add(energies, energy0[:, None], out=_WS.get("diff", (b, n_tau), np.float64))
    diff -= np.multiply(corr, 2, out=corr)
    np.maximum(diff, 0.0, out=diff)
    # cumulative-mean normalisation
    cum = np.cumsum(diff[:, 1:], axis=1, out=_WS.get("cum", (b, tau_max), np.float64))
    cum /= np.arange(1, n_tau)
    cum += _EPS
    cmnd = _WS.get("cmnd", (b, n_tau), np.float64)
    cmnd[:, 0] = 1.0
    np.divide(diff[:, 1:], cum, out=cmnd[:, 1:])
    region = cmnd[:, tau_min:n_tau]
    below = region < threshold
    voiced = below.any(axis=1)
    # the first local dip under the threshold: the first lag under it, then downhill to the bottom of
    # the dip (the first lag at or after it whose right neighbour is not lower; the last one stops)
    first = np.where(voiced, below.argmax(axis=1), region.argmin(axis=1))
    stop = np.ones(region.shape, dtype=bool)
    np.logical_not(region[:, 1:] < region[:, :-1], out=stop[:, :-1])
    stop &= np.arange(region.shape[1]) >= first[:, None]
    idx = stop.argmax(axis=1)
    rows = np.arange(b)
    dip = region[rows, idx]
    tau = (idx + tau_min).astype(np.float64)
    # parabolic interpolation around the chosen lag
    left = cmnd[rows, np.clip(tau.astype(int) - 1, 0, tau_max)]
    right = cmnd[rows, np.clip(tau.astype(int) + 1, 0, tau_max)]
    denom = left - 2 * dip + right
    shift = np.where(np.abs(denom) > _EPS, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    tau = tau + np.clip(shift, -1, 1)
    voiced &= energy0 > _EPS
    f0 = np.where(voiced, sr / np.maximum(tau, 1.0), 0.0)
    return f0, np.clip(dip, 0.0, 1.0)


def yin_f0(
    y: np.ndarray, sr: int, *, frame: int, hop: int, fmin: float, fmax: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised YIN: per frame, F0 in Hz and the cumulative-mean-normalised dip (aperiodicity, 0-1).

    Frames are centred like librosa's STFT (so index t matches the spectral frames). Unvoiced frames
    (no dip under `threshold`) get F0 0 and their minimum dip as aperiodicity.
    """
    padded, frames = _frames64(np.asarray(y, dtype=np.float64), frame, hop)
    _, tau_max, w = _yin_lags(sr, frame, fmin, fmax)
    energies = _lag_energies(padded, frame, hop, w, tau_max + 1)
    f0, dip = np.empty(len(frames)), np.empty(len(frames))
    for i in range(0, len(frames), _BLOCK):
        j = min(i + _BLOCK, len(frames))
        block = frames[i:j]
        spec = np.fft.rfft(block, axis=1, out=_WS.get("spec", (j - i, frame // 2 + 1), np.complex128))
        f0[i:j], dip[i:j] = _yin_block(block, spec, energies[i:j], sr, fmin, fmax, threshold)
    return f0, dip


def _pitch_stats(f0: np.ndarray, active: np.ndarray, hop_s: float) -> np.ndarray:
    voiced = (f0 > 0) & active
    n_active = max(1, int(active.sum()))
    if voiced.sum() < 3:
        return np.concatenate([[0.0] * 9, [voiced.sum() / n_active]])
    st = 12 * np.log2(f0[voiced] / 55.0)  # semitones above A1
    t = np.flatnonzero(voiced) * hop_s
    tc = t - t.mean()  # least-squares slope (np.polyfit(t, st, 1)[0], without its lstsq set-up)
    slope = float(tc @ (st - st.mean()) / (tc @ tc)) if np.ptp(t) > 0 else 0.0
    dst = np.abs(np.diff(st))
    dst = dst[dst < 4]  # ignore octave jumps and gaps
    p5, p50, p95 = percentiles(st, (5, 50, 95))
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


PITCH_NAMES = [
    "f0_st_mean",
    "f0_st_std",
    "f0_st_p5",
    "f0_st_p50",
    "f0_st_p95",
    "f0_st_range",
    "f0_slope",
    "f0_jump_mean",
    "f0_jump_std",
    "voiced_ratio",
]
SPECTRAL_NAMES = ["centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms_db", "aperiodicity"]
_N_CONTRAST = 7


def _delta(m: np.ndarray, width: int) -> np.ndarray:
    """First-order delta over `width` frames (the largest odd width that fits a short clip, at least 3),
    librosa's `feature.delta(..., mode="interp")`, by aei_batch.features.dsp's cached Savitzky-Golay
    operators; zeros under 3 frames."""
    n = m.shape[1]
    if n < 3:
        return np.zeros_like(m)
    return dsp.delta(m, max(3, min(width, n if n % 2 else n - 1)), 1)


def _zcr(y: np.ndarray, n_fft: int, hop: int, n_frames: int) -> np.ndarray:
    """Zero-crossing rate per frame: sign changes (of the signal zero-padded by n_fft // 2 each side)
    from each frame's start over the next `hop` samples, divided by `hop`."""
    sign = np.zeros(len(y) + 2 * (n_fft // 2), dtype=bool)
    np.signbit(y, out=sign[n_fft // 2 : n_fft // 2 + len(y)])
    changes = sign[1:] != sign[:-1]
    zcr = np.add.reduceat(changes, np.arange(0, len(changes), hop), dtype=np.int64)[:n_frames] / hop
    return np.pad(zcr, (0, n_frames - len(zcr)))


def _analysis(
    y: np.ndarray,
    sr: int,
    p: dict[str, Any],
    *,
    full: bool,
    keep_power: bool = False,
    noise: np.ndarray | None = None,
    floor: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Every per-frame quantity of one clip, in one pass over its frames (in blocks): the log-mel
    spectrogram, the frame level and the active frames; when `full`, the spectral shape, the
    spectral contrast and YIN's F0 and aperiodicity; when `keep_power`, the (frames, bins) float32
    power spectrum itself (`voice_audio` derives its spectral descriptors from it). With `noise` (a
    power spectrum from `noise_power`), every frame's power spectrum is cleaned by `subtract_noise`
    before anything is derived from it (the pitch, from the waveform, is not)."""
    if sr != p["sr"]:
        raise ValueError(f"rich features are defined at {p['sr']} Hz, got {sr}")
    y = np.asarray(y, dtype=np.float32)
    n_fft, hop = p["n_fft"], p["hop_length"]
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    padded, frames = _frames64(y, n_fft, hop)
    n = len(frames)
    mel_fb = _mel_fb(sr, n_fft, p["n_mels"], float(p["fmax"]))
    mel = np.empty((p["n_mels"], n), dtype=np.float32)
    frame_power = np.empty(n, dtype=np.float32)
    if full:
        bands = _contrast_bands(sr, n_fft, *_CONTRAST)
        shape = np.empty((4, n))  # centroid, bandwidth, roll-off (Hz), flatness
        valley, peak = np.empty((len(bands), n)), np.empty((len(bands), n))
        f0, dip = np.empty(n), np.empty(n)
        _, tau_max, w = _yin_lags(sr, n_fft, p["f0_min"], p["f0_max"])
        energies = _lag_energies(padded, n_fft, hop, w, tau_max + 1)
    power_all = np.empty((n, n_fft // 2 + 1), dtype=np.float32) if keep_power else None
    for i in range(0, n, _BLOCK):
        j = min(i + _BLOCK, n)
        block = frames[i:j]
        spec = np.fft.rfft(block, axis=1, out=_WS.get("spec", (j - i, n_fft // 2 + 1), np.complex128))
        power = _power_block(spec)
        if noise is not None:
            power = subtract_noise(power, noise)
        if power_all is not None:
            power_all[i:j] = power
        mel[:, i:j] = mel_fb @ power.T
        frame_power[i:j] = power.sum(axis=1)
        if full:
            _shape_block(power, sr, n_fft, shape[:, i:j])
            mag = np.sqrt(power, out=_WS.get("mag", power.shape, np.float32))
            _contrast_block(mag, bands, valley[:, i:j], peak[:, i:j])
            f0[i:j], dip[i:j] = _yin_block(
                block, spec, energies[i:j], sr, p["f0_min"], p["f0_max"], p["yin_threshold"]
            )
    frame_db = 10 * np.log10(np.maximum(frame_power, _EPS))
    out = {
        "logmel": 10 * np.log10(np.maximum(mel, _EPS)),
        "frame_db": frame_db,
        "active": active_frames(frame_db, p["active_db"], floor, hop / sr),
    }
    if full:
        out |= {"shape": shape, "contrast": _power_to_db(peak) - _power_to_db(valley), "f0": f0, "dip": dip}
    if power_all is not None:
        out["power"] = power_all
    return out


def analysis(
    y: np.ndarray,
    sr: int,
    *,
    keep_power: bool = False,
    noise: np.ndarray | None = None,
    floor: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """`rich_audio`'s full analysis of a clip (padded to one frame as `rich_audio` pads it), for the
    sets built on it (`features.voice`); `rich_from_analysis` turns it into the `rich_audio` vector.
    `floor`: the active frames' floor rule (`active_frames`), None for `rich_audio`'s own."""
    y = np.asarray(y, dtype=np.float32)
    if len(y) < RICH_PARAMS["n_fft"]:
        y = np.pad(y, (0, RICH_PARAMS["n_fft"] - len(y)))
    return _analysis(y, sr, RICH_PARAMS, full=True, keep_power=keep_power, noise=noise, floor=floor)


#: what spectral subtraction leaves of a bin at least: this share of its power (Berouti et al. 1979's
#: spectral floor; the remainder keeps a bin the noise swamps from reaching zero)
SPECTRAL_FLOOR = 0.05
#: `noise_power` needs at least this many whole analysis frames of non-speech (0.3 s at 22,050 Hz)
MIN_NOISE_FRAMES = 24


def subtract_noise(power: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Power spectral subtraction: each bin's power less the noise's, never under SPECTRAL_FLOOR of
    what it was. `power` (frames, bins) float32; `noise` (bins,) from `noise_power`."""
    return np.maximum(power - noise.astype(np.float32), SPECTRAL_FLOOR * power)


def noise_power(pieces: list[np.ndarray], sr: int) -> np.ndarray | None:
    """The mean power spectrum (bins,) float64 of the analysis frames lying wholly inside `pieces`
    (stretches of a recording that hold no speech, at `sr`), on `rich_audio`'s frame grid and window;
    None when they hold fewer than MIN_NOISE_FRAMES frames."""
    n_fft, hop = RICH_PARAMS["n_fft"], RICH_PARAMS["hop_length"]
    if sr != RICH_PARAMS["sr"]:
        raise ValueError(f"rich features are defined at {RICH_PARAMS['sr']} Hz, got {sr}")
    total, count = np.zeros(n_fft // 2 + 1), 0
    for piece in pieces:
        if len(piece) < n_fft:
            continue
        frames = np.lib.stride_tricks.sliding_window_view(np.asarray(piece, dtype=np.float64), n_fft)[::hop]
        for i in range(0, len(frames), _BLOCK):
            block = frames[i : i + _BLOCK]
            total += _power_block(np.fft.rfft(block, axis=1)).sum(axis=0, dtype=np.float64)
        count += len(frames)
    return total / count if count >= MIN_NOISE_FRAMES else None


@lru_cache(maxsize=4)
def _freq_powers(sr: int, n_fft: int) -> np.ndarray:
    """(bins, 3) float64: 1, f, f^2 per bin, to take a power spectrum's first moments in one product."""
    f = _freqs(sr, n_fft)
    return np.ascontiguousarray(np.stack([np.ones_like(f), f, f * f], axis=1))


def _shape_block(power: np.ndarray, sr: int, n_fft: int, out: np.ndarray) -> None:
    """Centroid, bandwidth, 85 % roll-off (Hz) and flatness of each frame of a (b, bins) power block.

    Centroid and bandwidth come from the power's moments (sum of p, f p, f^2 p, in float64):
    bandwidth^2 = (sum f^2 p - 2 c sum f p + c^2 sum p) / total, the expansion of the reference's
    sum (f - c)^2 p / total (equal to float64 rounding)."""
    total = power.sum(axis=1) + _EPS
    p64 = _WS.get("power64", power.shape, np.float64)
    np.copyto(p64, power)
    moments = p64 @ _freq_powers(sr, n_fft)
    centroid = moments[:, 1] / total
    out[0] = centroid
    spread = moments[:, 2] - 2 * centroid * moments[:, 1] + centroid * centroid * moments[:, 0]
    out[1] = np.sqrt(np.maximum(spread, 0.0) / total)
    freqs = _freqs(sr, n_fft)
    cum = np.cumsum(power, axis=1, out=_WS.get("cum_power", power.shape, np.float32))
    out[2] = freqs[np.minimum((cum < (0.85 * total)[:, None]).sum(axis=1), len(freqs) - 1)]
    log = np.log(np.add(power, _EPS, out=cum), out=cum)
    out[3] = np.exp(log.mean(axis=1)) / (power.mean(axis=1) + _EPS)


def rich_audio(y: np.ndarray, sr: int, noise: np.ndarray | None = None) -> np.ndarray:
    """The `rich_audio` vector (see module docstring and docs/FEATURES.md for the layout); with `noise`
    (`noise_power`), of the clip's spectrum cleaned of that noise (`subtract_noise`)."""
    y = np.asarray(y, dtype=np.float32)
    if len(y) < RICH_PARAMS["n_fft"]:  # very short clips: pad so every block sees the same frames
        y = np.pad(y, (0, RICH_PARAMS["n_fft"] - len(y)))
    return rich_from_analysis(y, sr, _analysis(y, sr, RICH_PARAMS, full=True, noise=noise))


def rich_from_analysis(y: np.ndarray, sr: int, a: dict[str, np.ndarray]) -> np.ndarray:
    """The `rich_audio` vector of the (padded) clip `y` from its full analysis (`analysis`)."""
    import scipy.fft

    p = RICH_PARAMS
    y = np.asarray(y, dtype=np.float32)
    if len(y) < p["n_fft"]:
        y = np.pad(y, (0, p["n_fft"] - len(y)))
    logmel, act, frame_db, f0 = a["logmel"], a["active"], a["frame_db"], a["f0"]
    hop = p["hop_length"]
    mfcc = scipy.fft.dct(logmel, axis=0, type=2, norm="ortho")[: p["n_mfcc"]]
    d1 = _delta(mfcc, p["delta_width"])
    centroid, bandwidth, rolloff, flatness = a["shape"]
    zcr = _zcr(y, p["n_fft"], hop, len(frame_db))
    spectral = np.vstack(
        [centroid / 1000, bandwidth / 1000, rolloff / 1000, flatness, zcr, frame_db, a["dip"]]
    )
    contrast = a["contrast"]
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
            [dur, (span[-1] - span[0] + 1) * hop / sr, frame_db.max()],
            _voicing_blocks(mfcc, f0, act),
            _delta(logmel, p["delta_width"])[:, act].std(axis=1),
            _thirds(mfcc[:N_THIRDS_MFCC], act),
            [_peak_rate(frame_db, act, hop / sr)],
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


def _rich_names() -> tuple[str, ...]:
    n, m = RICH_PARAMS["n_mfcc"], RICH_PARAMS["n_mels"]
    names = _summary_names("mfcc", n)
    names += [f"mfcc_d1_{i}_std" for i in range(n)] + [f"mfcc_d1_{i}_absmean" for i in range(n)]
    names += [f"logmel_{i}_mean" for i in range(m)] + [f"logmel_{i}_std" for i in range(m)]
    names += [f"contrast_{i}_mean" for i in range(_N_CONTRAST)] + [
        f"contrast_{i}_std" for i in range(_N_CONTRAST)
    ]
    names += [f"{s}_{st}" for st in ["mean", "std", "p10", "p50", "p90", "skew"] for s in SPECTRAL_NAMES]
    names += PITCH_NAMES + ["active_s", "speech_span_s", "peak_frame_db"]
    names += [f"mfcc_{i}_voiced_mean" for i in range(n)] + [f"mfcc_{i}_unvoiced_mean" for i in range(n)]
    names += [f"logmel_d1_{i}_std" for i in range(m)]
    names += [f"mfcc_{i}_third{k}_mean" for k in range(3) for i in range(N_THIRDS_MFCC)]
    names += ["loudness_peak_rate"]
    return tuple(names)


RICH = FeatureSet(
    name="rich_audio",
    version=1,
    params=RICH_PARAMS,
    names=_rich_names(),
    fn=rich_audio,
    noise_fn=noise_power,
    description="40 MFCC (6 stats) + delta spread, 64 log-mel mean/std, spectral contrast, "
    "spectral shape, YIN pitch and voicing statistics, active duration; over active frames only.",
)

PATCH_PARAMS: dict[str, Any] = {
    "sr": 22050,
    "n_fft": 1024,
    "hop_length": 256,
    "n_mels": 64,
    "fmax": 8000.0,
    "frames": 192,
    "active_db": 40.0,
    "floor_db": -80.0,
}


def logmel_patch(y: np.ndarray, sr: int) -> np.ndarray:
    """A (n_mels x frames) log-mel image centred on the active region, dB relative to the clip's peak."""
    p = PATCH_PARAMS
    a = _analysis(y, sr, p, full=False)
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


PATCH = FeatureSet(
    name="logmel_patch",
    version=1,
    params=PATCH_PARAMS,
    names=tuple(f"mel{m}_t{t}" for m in range(PATCH_PARAMS["n_mels"]) for t in range(PATCH_PARAMS["frames"])),
    fn=logmel_patch,
    description="64 x 192 log-mel image (2.2 s at hop 256) centred on the speech, for the Keras CNN.",
)

#: The sets this module defines (collected by aei_batch.features.registry).
FEATURE_SETS = (
    RICH,
    PATCH,
)
