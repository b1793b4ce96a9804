"""The seed features without librosa (aei_batch/features/dsp.py) give librosa's numbers.

`seed_mfcc157` is what models are trained and scored with; `seed_mfcc157_librosa` is the seed study's
own code path. A difference beyond float32 rounding would silently change every prediction of every
model trained before, so each building block and the whole vector are checked against librosa.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from aei_batch.features import dsp, get_feature_set
from aei_batch.features.audio import seed_mfcc157, seed_mfcc157_librosa

SR = 22050
RNG = np.random.default_rng(7)


def _speechlike(seconds: float) -> np.ndarray:
    """Harmonics with a wandering pitch, amplitude bursts and pauses, plus a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 1.3 * t), 0, None) ** 2
    return ((0.3 * env * y) + 0.002 * RNG.standard_normal(t.size)).astype(np.float32)


SIGNALS = {
    "speechlike 3.7 s": _speechlike(3.7),
    "tone 1 s": (0.2 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32),
    "noise 2 s": (0.1 * RNG.standard_normal(2 * SR)).astype(np.float32),
    "clipped": np.clip(_speechlike(1.5) * 20, -1, 1).astype(np.float32),
    "quiet": (_speechlike(1.0) * 1e-4).astype(np.float32),
    "odd length": _speechlike(0.777)[:17_131],
}


def _block_scaled_error(ref: np.ndarray, got: np.ndarray) -> float:
    """Largest difference relative to the magnitude of its block (mfcc / delta / delta2 / rms): a delta's
    mean is a near-zero telescoping sum, so element-wise relative errors would measure noise."""
    worst = 0.0
    for lo, hi in ((0, 52), (52, 104), (104, 156), (156, 157)):
        scale = max(float(np.abs(ref[lo:hi]).max()), 1e-12)
        worst = max(worst, float(np.abs(ref[lo:hi] - got[lo:hi]).max()) / scale)
    return worst


@pytest.mark.parametrize("name", list(SIGNALS))
def test_seed_vector_matches_librosa(name: str) -> None:
    y = SIGNALS[name]
    ref, got = seed_mfcc157_librosa(y, SR), seed_mfcc157(y, SR)
    assert got.shape == ref.shape == (157,) and got.dtype == np.float32
    assert _block_scaled_error(ref, got) < 1e-4


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("n", [600, 1024, 1536, 2047, 2560, 3584, 4608, 5000, 9000])
def test_short_clips_match_librosa(n: int) -> None:
    """Every delta width from 3 to 9 frames, and the under-3-frames fallback."""
    y = _speechlike(1.0)[:n]
    assert _block_scaled_error(seed_mfcc157_librosa(y, SR), seed_mfcc157(y, SR)) < 1e-4


def test_registered_set_uses_the_fast_path_and_keeps_its_identity() -> None:
    fs = get_feature_set("seed_mfcc157")
    assert fs.fn is seed_mfcc157
    assert fs.id == "seed_mfcc157@v1"  # same name, version, params: models trained before still load


def test_mel_bank_and_dct_match() -> None:
    ref = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=128)
    np.testing.assert_allclose(dsp.mel_basis_t(SR, 2048, 128).T, ref, rtol=1e-5, atol=1e-8)
    import scipy.fft

    x = RNG.standard_normal((5, 128)).astype(np.float32)
    np.testing.assert_allclose(
        x @ dsp.dct_t(128, 13), scipy.fft.dct(x, axis=1, type=2, norm="ortho")[:, :13], rtol=1e-4, atol=1e-4
    )


def test_mel_bank_below_nyquist_matches() -> None:
    """rich_audio's bank: 64 bands up to 8 kHz of a 1024-point FFT."""
    ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmax=8000.0)
    np.testing.assert_allclose(dsp.mel_basis_t(SR, 1024, 64, 8000.0).T, ref, rtol=1e-6, atol=1e-9)
    assert not np.allclose(dsp.mel_basis_t(SR, 1024, 64).T, ref)  # fmax is not ignored


@pytest.mark.parametrize(("width", "order"), [(3, 1), (5, 1), (9, 1), (5, 2), (9, 2), (7, 2)])
@pytest.mark.parametrize("rows", [13, 64])
def test_delta_matches_librosa(width: int, order: int, rows: int) -> None:
    m = RNG.standard_normal((rows, 40)).astype(np.float32)
    ref = librosa.feature.delta(m, width=width, order=order, mode="interp")
    got = dsp.delta(m, width, order)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_frame_rms_and_power_match() -> None:
    y = SIGNALS["speechlike 3.7 s"]
    ref = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0]
    np.testing.assert_allclose(dsp.frame_rms(y, 2048, 512), ref, rtol=1e-4, atol=1e-7)
    frames = dsp.centred_frames(y, 2048, 512)
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    np.testing.assert_allclose(dsp.power_spectrum(frames).T, stft, rtol=1e-3, atol=1e-6 * stft.max())


def test_wrong_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="22050"):
        seed_mfcc157(SIGNALS["tone 1 s"], 16000)
