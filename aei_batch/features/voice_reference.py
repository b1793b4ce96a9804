"""`voice_audio`'s voice-quality block as it was before it shared `rich_audio`'s analysis.

Kept, unchanged, as the reference the single-pass code in `aei_batch.features.voice` is tested against
(tests/unit/test_features_voice.py) and as the "before" of bench/bench_features.py: a difference beyond
the stated tolerance would silently change every prediction of every model trained on `voice_audio`.
This module registers nothing and is not imported on the scoring path.
"""

from __future__ import annotations

import numpy as np

from aei_batch.features.voice import FUNCS, RHYTHM, SPEC_LLD, SRC_LLD, VOICE_PARAMS

_EPS = 1e-10
__all__ = ["RHYTHM", "SPEC_LLD", "voice_block"]


def _functionals(m: np.ndarray, hop_s: float) -> np.ndarray:
    """(descriptors, frames) -> (descriptors * 10) block-major by descriptor (finite, zeros when empty)."""
    d, n = m.shape
    if n < 2:
        base = m[:, 0] if n else np.zeros(d)
        out = np.zeros((d, len(FUNCS)))
        out[:, 0] = base
        out[:, 2:5] = base[:, None]
        return out.reshape(-1)
    mean = m.mean(axis=1)
    c = m - mean[:, None]
    std = np.sqrt((c**2).mean(axis=1))
    z = c / (std[:, None] + 1e-9)
    p10, p25, p50, p75, p90 = np.percentile(m, (10, 25, 50, 75, 90), axis=1)
    t = np.arange(n) * hop_s
    t = t - t.mean()
    slope = (c * t).sum(axis=1) / max(float((t**2).sum()), 1e-9)
    absdelta = np.abs(np.diff(m, axis=1)).mean(axis=1)
    out = np.stack(
        [
            mean,
            std,
            p10,
            p50,
            p90,
            p75 - p25,
            np.clip((z**3).mean(axis=1), -20, 20),
            np.clip((z**4).mean(axis=1), 0, 100),
            slope,
            absdelta,
        ],
        axis=1,
    )
    return out.reshape(-1)


def _band_slope(db: np.ndarray, freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    sel = (freqs >= lo) & (freqs < hi)
    f = freqs[sel] / 1000.0
    f = f - f.mean()
    seg = db[:, sel]
    return ((seg - seg.mean(axis=1, keepdims=True)) * f).sum(axis=1) / max(float((f**2).sum()), 1e-9)  # type: ignore[no-any-return]


def _spectral_llds(power: np.ndarray, sr: int, n_fft: int, bands: list[float]) -> np.ndarray:
    """(frames, bins) power -> (len(SPEC_LLD), frames)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    p = power.astype(np.float32) + np.float32(_EPS)
    edges = list(zip(bands[:-1], bands[1:], strict=True)) + [(50, 1000), (1000, 5000)]
    ind = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in edges], axis=1).astype(np.float32)
    fk = (freqs / 1000.0).astype(np.float32)
    mom = np.stack([np.ones_like(fk), fk, fk**2, fk**3, fk**4], axis=1)
    sums = (p @ np.concatenate([ind, mom], axis=1)).astype(np.float64)
    band, m = sums[:, : ind.shape[1]], sums[:, ind.shape[1] :]
    total = m[:, 0]
    rows = list((10 * np.log10(band[:, :-2] / total[:, None])).T)
    rows.append(10 * np.log10(band[:, -2] / band[:, -1]))
    lo2k, mid = freqs < 2000, (freqs >= 2000) & (freqs < 5000)
    rows.append(10 * np.log10(p[:, lo2k].max(axis=1) / p[:, mid].max(axis=1)))
    low = freqs < 1500
    db = 10 * np.log10(p[:, low])
    rows.append(_band_slope(db, freqs[low], 0, 500))
    rows.append(_band_slope(db, freqs[low], 500, 1500))
    plogp = (p * np.log(p)).sum(axis=1, dtype=np.float64)
    rows.append(-(plogp / total - np.log(total)) / np.log(p.shape[1]))
    e1, e2, e3, e4 = (m[:, k] / total for k in (1, 2, 3, 4))
    var = np.maximum(e2 - e1**2, 1e-12)
    c3 = e3 - 3 * e1 * e2 + 2 * e1**3
    c4 = e4 - 4 * e1 * e3 + 6 * e1**2 * e2 - 3 * e1**4
    rows.append(np.clip(c3 / var**1.5, -50, 50))
    rows.append(np.log1p(np.clip(c4 / var**2, 0, 1e4)))
    sq = np.sqrt(p / total[:, None].astype(np.float32))
    flux = np.zeros(len(p))
    flux[1:] = np.sqrt(((sq[1:] - sq[:-1]) ** 2).sum(axis=1))
    rows.append(flux)
    rows.append(np.log10((p**0.3).sum(axis=1, dtype=np.float64) + 1e-6))
    return np.vstack(rows)


def _formants(frames: np.ndarray, sr: int, order: int) -> np.ndarray:
    """(frames, samples) -> (frames, 3) F1-F3 in Hz from LPC roots (NaN where not found)."""
    n = frames.shape[1]
    x = frames * np.hamming(n)
    x = np.concatenate([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], axis=1)  # pre-emphasis
    spec = np.fft.rfft(x, 2 * n, axis=1)
    r = np.fft.irfft(np.abs(spec) ** 2, 2 * n, axis=1)[:, : order + 1]
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


def voice_block(y: np.ndarray, sr: int) -> np.ndarray:
    """The voice-quality and spectral-balance block (everything after `rich_audio`'s 701 values)."""
    import soxr

    from aei_batch.features import dsp
    from aei_batch.features.rich import active_frames, yin_f0

    p = VOICE_PARAMS
    if sr != p["sr"]:
        raise ValueError(f"voice features are defined at {p['sr']} Hz, got {sr}")
    n_fft, hop = p["n_fft"], p["hop_length"]
    y = np.ascontiguousarray(y, dtype=np.float32)
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    power = dsp.power_spectrum(dsp.centred_frames(y, n_fft, hop))
    n_frames = power.shape[0]
    frame_db = 10 * np.log10(np.maximum(power.sum(axis=1).astype(np.float64), _EPS))
    act = active_frames(frame_db, p["active_db"])
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
