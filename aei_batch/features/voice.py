"""`voice_audio`: `rich_audio` plus voice-quality and spectral-balance descriptors (docs/FEATURES.md).

The descriptors of the kind that make the large research sets strong (jitter, shimmer, harmonics-to-
noise ratio, formants, spectral slopes, band-energy balance, spectral entropy and flux), computed here
in NumPy/SciPy from first principles, each summarised by ten functionals over the clip's active frames.

Low-level descriptors (one value per 11.6 ms frame; the time grid of `rich_audio`):

* spectral, from one 1,024-point power spectrum at 22,050 Hz (`features.dsp`): the energy of seven bands
  (0-300, 300-800, 800-1,500, 1,500-2,500, 2,500-3,400, 3,400-5,000, 5,000-8,000 Hz) in dB relative to
  the frame's total; alpha ratio (50-1,000 Hz over 1-5 kHz, dB); Hammarberg index (strongest bin under
  2 kHz over the strongest in 2-5 kHz, dB); spectral slope (dB per kHz, least squares) of 0-500 Hz and
  of 500-1,500 Hz; spectral entropy, skewness and kurtosis; spectral flux; a loudness proxy (log of
  the summed power^0.3).
* source, from the signal at 11,025 Hz: YIN pitch (`rich.yin_f0`, same grid) in semitones; HNR in dB
  from YIN's aperiodicity dip (10 log10((1 - d) / d)); jitter (relative change of the pitch period
  between consecutive voiced frames); shimmer (dB change of the frame level between consecutive voiced
  frames); F1-F3 in Hz from the roots of a 10th-order LPC polynomial (autocorrelation method).

Functionals per descriptor: mean, std, p10, p50, p90, interquartile range, skewness, kurtosis, the
slope of a line fitted over time (per second) and the mean absolute frame-to-frame change; source
descriptors over voiced active frames only. Plus four rhythm values: voiced segments per second, mean
voiced and unvoiced run lengths (s), and the voiced share of active frames.

A pure function of (y, sr) with finite values on silence and very short clips, like the other sets.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from aei_batch.features.base import FeatureSet

VOICE_PARAMS: dict[str, Any] = {
    "sr": 22050,
    "n_fft": 1024,
    "hop_length": 256,
    "active_db": 40.0,
    "bands_hz": [0, 300, 800, 1500, 2500, 3400, 5000, 8000],
    "source_sr": 11025,
    "lpc_order": 10,
    "f0_min": 65.0,
    "f0_max": 500.0,
    "yin_threshold": 0.2,
}
_EPS = 1e-10
SPEC_LLD = [f"band{i}_rel_db" for i in range(7)] + [
    "alpha_ratio",
    "hammarberg",
    "slope_0_500",
    "slope_500_1500",
    "spec_entropy",
    "spec_skew",
    "spec_kurt",
    "spec_flux",
    "loudness",
]
SRC_LLD = ["f0_st", "hnr_db", "jitter", "shimmer_db", "f1_hz", "f2_hz", "f3_hz"]
FUNCS = ["mean", "std", "p10", "p50", "p90", "iqr", "skew", "kurt", "tslope", "absdelta"]
RHYTHM = ["voiced_seg_rate", "voiced_run_s", "unvoiced_run_s", "voiced_share"]


def _functionals(m: np.ndarray, hop_s: float) -> np.ndarray:
    """(descriptors, frames) -> (descriptors * 10) block-major by descriptor (finite, zeros when empty)."""
    from aei_batch.features.rich import percentiles

    d, n = m.shape
    if n < 2:
        base = m[:, 0] if n else np.zeros(d)
        out = np.zeros((d, len(FUNCS)))
        out[:, 0] = base
        out[:, 2:5] = base[:, None]
        return out.reshape(-1)
    mean = m.mean(axis=1)
    c = m - mean[:, None]
    c2 = c * c
    std = np.sqrt(c2.mean(axis=1))
    z = c / (std[:, None] + 1e-9)
    z2 = z * z
    p10, p25, p50, p75, p90 = percentiles(m, (10, 25, 50, 75, 90))  # np.percentile's values, one sort
    t = np.arange(n) * hop_s
    t = t - t.mean()
    out = np.empty((d, len(FUNCS)))
    out[:, 0] = mean
    out[:, 1] = std
    out[:, 2] = p10
    out[:, 3] = p50
    out[:, 4] = p90
    out[:, 5] = p75 - p25
    out[:, 6] = np.clip((z2 * z).mean(axis=1), -20, 20)  # z * z * z: `z**3` costs 20x more
    out[:, 7] = np.clip((z2 * z2).mean(axis=1), 0, 100)
    out[:, 8] = (c @ t) / max(float(t @ t), 1e-9)
    out[:, 9] = np.abs(np.diff(m, axis=1)).mean(axis=1)
    return out.reshape(-1)


@lru_cache(maxsize=4)
def _spectral_weights(sr: int, n_fft: int, bands: tuple[float, ...]) -> dict[str, Any]:
    """What `_spectral_llds` needs of the frequency axis, once per (sr, n_fft, bands): the band and
    moment weights (one product gives every band energy and spectral moment), the bin ranges of the
    Hammarberg index, and the least-squares slope weights of 0-500 and 500-1,500 Hz."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = list(zip(bands[:-1], bands[1:], strict=True)) + [(50, 1000), (1000, 5000)]
    ind = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in edges], axis=1).astype(np.float32)
    fk = (freqs / 1000.0).astype(np.float32)
    mom = np.stack([np.ones_like(fk), fk, fk**2, fk**3, fk**4], axis=1)
    n_low = int((freqs < 1500).sum())
    slopes = np.zeros((n_low, 2))
    for k, (lo, hi) in enumerate(((0, 500), (500, 1500))):
        sel = (freqs[:n_low] >= lo) & (freqs[:n_low] < hi)
        f = freqs[:n_low][sel] / 1000.0
        f = f - f.mean()
        # sum((db - mean(db)) * f) = sum(db * f) as the centred f sums to zero
        slopes[sel, k] = f / max(float((f**2).sum()), 1e-9)
    return {
        "weights": np.ascontiguousarray(np.concatenate([ind, mom], axis=1)),
        "n_bands": ind.shape[1],
        "k2": int((freqs < 2000).sum()),
        "k5": int((freqs < 5000).sum()),
        "n_low": n_low,
        "slopes": slopes,
    }


def _spectral_llds(power: np.ndarray, sr: int, n_fft: int, bands: list[float]) -> np.ndarray:
    """(frames, bins) float32 power -> (len(SPEC_LLD), frames)."""
    w = _spectral_weights(sr, n_fft, tuple(bands))
    p = power + np.float32(_EPS)
    sums = (p @ w["weights"]).astype(np.float64)
    nb = w["n_bands"]
    band, m = sums[:, :nb], sums[:, nb:]
    total = m[:, 0]
    out = np.empty((len(SPEC_LLD), len(p)))
    out[:7] = (10 * np.log10(band[:, :-2] / total[:, None])).T
    out[7] = 10 * np.log10(band[:, -2] / band[:, -1])
    k2, k5 = w["k2"], w["k5"]
    out[8] = 10 * np.log10(p[:, :k2].max(axis=1) / p[:, k2:k5].max(axis=1))
    db = 10 * np.log10(p[:, : w["n_low"]])
    out[9:11] = (db @ w["slopes"]).T
    logp = np.log(p)
    plogp = np.einsum("ij,ij->i", p, logp, dtype=np.float64)
    out[11] = -(plogp / total - np.log(total)) / np.log(p.shape[1])
    e1, e2, e3, e4 = (m[:, k] / total for k in (1, 2, 3, 4))
    var = np.maximum(e2 - e1**2, 1e-12)
    c3 = e3 - 3 * e1 * e2 + 2 * e1**3
    c4 = e4 - 4 * e1 * e3 + 6 * e1**2 * e2 - 3 * e1**4
    out[12] = np.clip(c3 / var**1.5, -50, 50)
    out[13] = np.log1p(np.clip(c4 / var**2, 0, 1e4))
    sq = np.sqrt(p / total[:, None].astype(np.float32))
    out[14, 0] = 0.0
    d = sq[1:] - sq[:-1]
    out[14, 1:] = np.sqrt(np.einsum("ij,ij->i", d, d, dtype=np.float64))
    logp *= np.float32(0.3)  # p ** 0.3 = exp(0.3 log p): the float32 power has no vector loop
    out[15] = np.log10(np.exp(logp, out=logp).sum(axis=1, dtype=np.float64) + 1e-6)
    return out


def _formants(frames: np.ndarray, sr: int, order: int) -> np.ndarray:
    """(frames, samples) -> (frames, 3) F1-F3 in Hz from LPC roots (NaN where not found)."""
    n = frames.shape[1]
    x = frames * np.hamming(n)
    x = np.concatenate([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], axis=1)  # pre-emphasis
    spec = np.fft.rfft(x, 2 * n, axis=1)
    r = np.fft.irfft(spec.real**2 + spec.imag**2, 2 * n, axis=1)[:, : order + 1]
    r[:, 0] *= 1.0 + 1e-4  # white-noise correction keeps the system well conditioned
    idx = np.abs(np.subtract.outer(np.arange(order), np.arange(order)))
    toe = r[:, idx] + 1e-9 * np.eye(order)
    a = np.linalg.solve(toe, r[:, 1 : order + 1, None])[:, :, 0]  # predictor coefficients
    comp = np.zeros((len(a), order, order))
    comp[:, 0, :] = a
    comp[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    roots = np.linalg.eigvals(comp)
    freq = np.angle(roots) * sr / (2 * np.pi)
    bw = -np.log(np.maximum(np.abs(roots), 1e-9)) * sr / np.pi
    ok = (roots.imag > 0) & (freq > 90) & (freq < sr / 2 - 100) & (bw < 500)
    freq = np.where(ok, freq, np.inf)
    freq.sort(axis=1)
    out = freq[:, :3]
    return np.where(np.isfinite(out), out, np.nan)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths of True runs and of False runs of a boolean sequence."""
    if not mask.size:
        return np.zeros(0), np.zeros(0)
    change = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [mask.size]])
    lengths = np.diff(bounds)
    values = mask[bounds[:-1]]
    return lengths[values], lengths[~values]


def _pad(y: np.ndarray) -> np.ndarray:
    y = np.ascontiguousarray(y, dtype=np.float32)
    n_fft = VOICE_PARAMS["n_fft"]
    return np.pad(y, (0, n_fft - len(y))) if len(y) < n_fft else y


def _analysis(
    y: np.ndarray, sr: int, noise: np.ndarray | None = None, floor: dict[str, float] | None = None
) -> dict[str, np.ndarray]:
    """`rich_audio`'s one pass over the frames (features.rich), keeping the power spectrum: the same
    centred Hann frames and grid as this block's spectral descriptors, so they are not computed twice.
    `floor`: the active frames' floor rule (v2, `FLOOR_RULE`), None for v1."""
    from aei_batch.features.rich import RICH_PARAMS, analysis

    p = VOICE_PARAMS
    if sr != p["sr"]:
        raise ValueError(f"voice features are defined at {p['sr']} Hz, got {sr}")
    assert all(RICH_PARAMS[k] == p[k] for k in ("sr", "n_fft", "hop_length", "active_db"))
    return analysis(y, sr, keep_power=True, noise=noise, floor=floor)


def _block_from(y: np.ndarray, sr: int, a: dict[str, np.ndarray]) -> np.ndarray:
    """The voice-quality block of the padded clip `y`, given its analysis (`_analysis`)."""
    import soxr

    from aei_batch.features.rich import yin_f0

    p = VOICE_PARAMS
    n_fft, hop = p["n_fft"], p["hop_length"]
    power, frame_db, act = a["power"], a["frame_db"].astype(np.float64), a["active"]
    n_frames = power.shape[0]
    spec = _spectral_llds(power, sr, n_fft, p["bands_hz"])

    ssr = p["source_sr"]
    ys = soxr.resample(y, sr, ssr).astype(np.float32)
    sh = hop * ssr // sr  # 128: the same frame times as the spectral grid
    sframe = n_fft * ssr // sr
    f0, dip = yin_f0(
        ys, ssr, frame=sframe, hop=sh, fmin=p["f0_min"], fmax=p["f0_max"], threshold=p["yin_threshold"]
    )
    f0 = np.pad(f0, (0, max(0, n_frames - len(f0))))[:n_frames]
    dip = np.pad(dip, (0, max(0, n_frames - len(dip))), constant_values=1.0)[:n_frames]
    voiced = (f0 > 0) & act
    hop_s = hop / sr

    src = np.zeros((len(SRC_LLD), n_frames))
    src[0] = np.where(f0 > 0, 12 * np.log2(np.maximum(f0, 1.0) / 55.0), 0.0)
    d = np.clip(dip, 1e-3, 1 - 1e-3)
    src[1] = 10 * np.log10((1 - d) / d)
    period = np.where(f0 > 0, 1.0 / np.maximum(f0, 1.0), 0.0)
    both = np.zeros(n_frames, dtype=bool)
    both[1:] = voiced[1:] & voiced[:-1]
    jit = np.zeros(n_frames)
    jit[1:] = np.abs(np.diff(period)) / np.maximum(period[1:], 1e-6)
    src[2] = np.minimum(jit, 0.5)
    shim = np.zeros(n_frames)
    shim[1:] = np.abs(np.diff(frame_db))
    src[3] = np.minimum(shim, 12.0)
    vidx = np.flatnonzero(voiced)
    if vidx.size:
        yp = np.pad(ys, (sframe // 2, sframe))
        starts = np.minimum(vidx * sh, len(yp) - sframe)
        frames = np.lib.stride_tricks.sliding_window_view(yp, sframe)[starts].astype(np.float64)
        fm = _formants(frames, ssr, p["lpc_order"])
        for k in range(3):
            col = fm[:, k]
            fill = np.nanmedian(col) if np.isfinite(col).any() else 500.0 * (2 * k + 1)
            src[4 + k, vidx] = np.where(np.isfinite(col), col, fill)
    src_sel = voiced if voiced.sum() >= 3 else act
    src_block = _functionals(src[:, src_sel], hop_s)
    # jitter and shimmer only mean anything between consecutive voiced frames
    pair = both & act
    if pair.sum() >= 2:
        pair_f = _functionals(src[2:4][:, pair], hop_s).reshape(2, -1)
    else:
        pair_f = np.zeros((2, len(FUNCS)))
    src_block = src_block.reshape(len(SRC_LLD), -1)
    src_block[2:4] = pair_f
    v_runs, u_runs = _runs(voiced[act])
    active_s = max(float(act.sum()) * hop_s, hop_s)
    rhythm = np.array(
        [
            len(v_runs) / active_s,
            float(v_runs.mean()) * hop_s if len(v_runs) else 0.0,
            float(u_runs.mean()) * hop_s if len(u_runs) else 0.0,
            float(voiced.sum()) / max(int(act.sum()), 1),
        ]
    )
    out = np.concatenate([_functionals(spec[:, act], hop_s), src_block.reshape(-1), rhythm])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)  # type: ignore[no-any-return]


def voice_block(y: np.ndarray, sr: int) -> np.ndarray:
    """The voice-quality and spectral-balance block (everything after `rich_audio`'s 701 values)."""
    y = _pad(y)
    return _block_from(y, sr, _analysis(y, sr))


def voice_audio(
    y: np.ndarray, sr: int, noise: np.ndarray | None = None, floor: dict[str, float] | None = None
) -> np.ndarray:
    """`rich_audio`'s 701 values followed by `voice_block`, from one analysis of the frames (with `noise`,
    of the spectrum cleaned of it: `features.rich.subtract_noise`). `floor`: v2's active-frame rule."""
    from aei_batch.features.rich import rich_from_analysis

    y = _pad(y)
    a = _analysis(y, sr, noise, floor)
    return np.concatenate([rich_from_analysis(y, sr, a), _block_from(y, sr, a)])


#: v2's active frames (features.rich: active_frames, floor_level): a clip with a steady floor (a run of
#: 0.4 s within 6 dB of its 10th-percentile frame) leaves out the frames less than 10 dB above that floor,
#: never cutting deeper than 20 dB under the peak. Constants fixed before any accuracy was measured.
FLOOR_RULE: dict[str, float] = {"spread_db": 6.0, "min_run_s": 0.4, "margin_db": 10.0, "range_db": 20.0}


def voice_audio_v2(y: np.ndarray, sr: int, noise: np.ndarray | None = None) -> np.ndarray:
    """`voice_audio` with v2's floor-aware active frames (`FLOOR_RULE`)."""
    return voice_audio(y, sr, noise, FLOOR_RULE)


def _noise_power(pieces: list[np.ndarray], sr: int) -> np.ndarray | None:
    """The noise spectrum `voice_audio(..., noise=)` takes: `rich_audio`'s (same frames and window)."""
    from aei_batch.features.rich import noise_power

    return noise_power(pieces, sr)


def _voice_names() -> tuple[str, ...]:
    from aei_batch.features.rich import RICH

    block = [f"vq_{d}_{f}" for d in SPEC_LLD + SRC_LLD for f in FUNCS] + [f"vq_{r}" for r in RHYTHM]
    return tuple(list(RICH.names) + block)


VOICE = FeatureSet(
    name="voice_audio",
    version=1,
    params={**VOICE_PARAMS, "base": "rich_audio@v1"},
    names=_voice_names(),
    fn=voice_audio,
    noise_fn=_noise_power,
    description="rich_audio + voice quality (HNR, jitter, shimmer, F1-F3), band-energy balance, "
    "spectral slopes, entropy, flux and rhythm, 10 functionals each.",
)

VOICE_V2 = FeatureSet(
    name="voice_audio",
    version=2,
    params={**VOICE_PARAMS, "active_floor": FLOOR_RULE, "base": "rich_audio@v1"},
    names=VOICE.names,
    fn=voice_audio_v2,
    noise_fn=_noise_power,
    description=VOICE.description.replace("10 functionals each.", "10 functionals each; active frames ")
    + "exclude a steady floor (noise, a telephone channel's quantisation noise).",
)

#: The sets this module defines (collected by aei_batch.features.registry). v1 stays for models trained on it.
FEATURE_SETS = (VOICE, VOICE_V2)
