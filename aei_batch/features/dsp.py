"""The seed features' signal processing in NumPy and `scipy.fft`, without librosa.

librosa's `mfcc` / `delta` / `rms` compute the same quantities, but in a scoring worker they cost more
than the decode itself: importing `librosa.util` compiles numba kernels (about 1 s of CPU per process),
`mfcc` rebuilds its 128 x 1025 mel filter bank on every call (0.7 ms), `delta` refits the
Savitzky-Golay edge polynomials on every call, and NumPy's FFT is several times slower than
`scipy.fft` for real frames. Here the filter bank, the DCT matrix and the Savitzky-Golay operators are
built once and cached; one framing of the signal feeds both the spectrum and the RMS.

The definitions are librosa 0.11's defaults for these calls (tests/unit/test_features_fast.py checks
the result against librosa itself on speech, tones, noise and short clips):

* STFT: periodic Hann window of `n_fft`, frames centred (zero padding of `n_fft // 2` each side), hop
  `hop_length`; power spectrum |X|^2.
* Mel: Slaney mel scale (linear below 1 kHz, logarithmic above), `n_mels` triangular filters from 0 Hz
  to Nyquist, Slaney area normalisation; dB: 10 log10(max(1e-10, S)), floored at 80 dB under the peak.
* MFCC: orthonormal DCT-II over the mel bands, first `n_mfcc` coefficients.
* Deltas: Savitzky-Golay derivative of order `order` (polynomial of the same order) over `width`
  frames, the edges by a polynomial fit to the first / last `width` frames (SciPy's `mode="interp"`).
* RMS: root mean square of each centred, zero-padded frame of `n_fft` samples.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = math.log(6.4) / 27.0
    return np.where(
        f >= min_log_hz,
        min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
        f / f_sp,
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_basis_t(sr: int, n_fft: int, n_mels: int, fmax: float | None = None) -> np.ndarray:
    """The Slaney mel filter bank from 0 Hz to `fmax` (Nyquist when None), transposed:
    (1 + n_fft // 2, n_mels) float32, C-contiguous; `librosa.filters.mel(sr=sr, n_fft=n_fft,
    n_mels=n_mels, fmax=fmax).T`."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo, hi = _hz_to_mel(np.array([0.0, sr / 2.0 if fmax is None else float(fmax)]))
    mel_hz = _mel_to_hz(np.linspace(float(lo), float(hi), n_mels + 2))
    width = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # Slaney: constant energy per band
    return np.ascontiguousarray(weights.T)


@lru_cache(maxsize=8)
def dct_t(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II matrix, transposed and truncated: (n_in, n_out) float32."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    d = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    d[0] /= math.sqrt(2.0)
    return np.ascontiguousarray(d.T.astype(np.float32))


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)  # periodic


def centred_frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft) read-only view of `y` zero-padded by n_fft // 2 on each side; 1 + len(y) // hop
    frames."""
    pad = n_fft // 2
    padded = np.zeros(len(y) + 2 * pad, dtype=np.float32)
    padded[pad : pad + len(y)] = y
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """|rFFT(frame x Hann)|^2 per frame: (frames, 1 + n_fft // 2) float32."""
    import scipy.fft

    spec = scipy.fft.rfft(frames * _hann(frames.shape[1]), axis=1, overwrite_x=True)
    return np.square(spec.real) + np.square(spec.imag)  # type: ignore[no-any-return]


def mfcc_from_power(power: np.ndarray, sr: int, n_fft: int, n_mels: int, n_mfcc: int) -> np.ndarray:
    """(frames, bins) power spectrum -> (n_mfcc, frames) MFCCs, librosa's `mfcc` defaults."""
    mel = power @ mel_basis_t(sr, n_fft, n_mels)
    db = np.log10(np.maximum(mel, np.float32(1e-10)))
    db *= np.float32(10.0)
    np.maximum(db, db.max() - np.float32(80.0), out=db)
    return np.ascontiguousarray((db @ dct_t(n_mels, n_mfcc)).T)


@lru_cache(maxsize=32)
def _savgol(width: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Savitzky-Golay derivative operators (polynomial and derivative of `order`): the centred
    coefficients (width,), and the row that gives the derivative at the edges (interp mode)."""
    half = width // 2
    powers = np.arange(order + 1)
    centred = np.arange(-half, half + 1, dtype=np.float64)
    target = np.zeros(order + 1)
    target[order] = math.factorial(order)
    coeffs = np.linalg.lstsq(centred[None, :] ** powers[:, None], target, rcond=None)[0]
    # Edges: a polynomial of degree `order` fitted to the first (last) `width` points; its order-th
    # derivative is a constant, order! times its leading coefficient, the same at every edge point.
    fit = np.linalg.pinv(np.arange(width, dtype=np.float64)[:, None] ** powers[None, :])
    return coeffs, math.factorial(order) * fit[order]


def delta(m: np.ndarray, width: int, order: int) -> np.ndarray:
    """Savitzky-Golay derivative of `m` (coeffs, frames) along frames, SciPy's `mode="interp"`;
    needs an odd width with order < width <= frames. The interior is one `scipy.ndimage.correlate1d`
    (what `scipy.signal.savgol_filter` runs; a scoring process has scipy.ndimage loaded already, by
    scikit-learn), the edges the cached edge operator."""
    import scipy.ndimage

    coeffs, edge = _savgol(width, order)
    half = width // 2
    n = m.shape[1]
    out = scipy.ndimage.correlate1d(m, coeffs, axis=1, mode="constant")
    out[:, :half] = (m[:, :width] @ edge)[:, None]
    out[:, n - half :] = (m[:, n - width :] @ edge)[:, None]
    return out  # type: ignore[no-any-return]


def frame_rms(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """RMS of each centred frame (the frames of `centred_frames`), from a running sum of squares."""
    n_frames = 1 + len(y) // hop
    pad = n_fft // 2
    sq = np.zeros(len(y) + 2 * pad + 1)
    np.square(y, out=sq[pad + 1 : pad + 1 + len(y)], dtype=np.float64)
    total = np.cumsum(sq)
    starts = np.arange(n_frames) * hop
    return np.sqrt(np.maximum(total[starts + n_fft] - total[starts], 0.0) / n_fft)  # type: ignore[no-any-return]


def true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends ([start, end) frame indices) of the runs of True in a boolean sequence."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]])))
    return edges[::2], edges[1::2]
