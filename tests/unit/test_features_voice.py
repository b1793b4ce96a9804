"""`voice_audio` (rich_audio + voice quality) and the training augmentation of features/augment.py."""

import numpy as np
import pytest

from aei_batch.features import get_feature_set, list_feature_sets
from aei_batch.features.augment import mu_law, random_crop, telephone, telephone_8k
from aei_batch.features.voice import voice_block
from aei_batch.synth import synth_clip

SR = 22050


def _tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def _value(vec: np.ndarray, name: str) -> float:
    names = get_feature_set("voice_audio").names
    return float(vec[names.index("vq_" + name)])


def test_registered_starts_with_rich_audio_and_names_match():
    fs = get_feature_set("voice_audio")
    rich = get_feature_set("rich_audio")
    assert fs in list_feature_sets() and len(set(fs.names)) == fs.dim
    assert fs.names[: rich.dim] == rich.names
    y = synth_clip("happy", 19, sr=SR, seconds=1.5)
    vec = fs.extract(y, SR)
    np.testing.assert_array_equal(vec[: rich.dim], rich.extract(y, SR))
    np.testing.assert_array_equal(vec, fs.extract(y.copy(), SR))


@pytest.mark.parametrize("n", [0, 1, 100, 1023, 5000])
def test_finite_on_silence_and_short_clips(n):
    for y in (np.zeros(n, np.float32), np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)):
        assert np.isfinite(voice_block(y, SR)).all()


def test_rejects_other_sample_rates():
    with pytest.raises(ValueError, match="22050"):
        voice_block(np.zeros(4000, np.float32), 16000)


def test_harmonic_tone_has_high_hnr_low_jitter_and_its_pitch():
    tone = get_feature_set("voice_audio").extract(_tone(200.0), SR)
    noise = get_feature_set("voice_audio").extract(
        np.random.default_rng(1).normal(0, 0.1, SR).astype(np.float32), SR
    )
    assert _value(tone, "hnr_db_mean") > 15 > _value(noise, "hnr_db_mean")
    assert _value(tone, "jitter_mean") < 0.01
    assert abs(_value(tone, "f0_st_p50") - 12 * np.log2(200 / 55)) < 0.3
    # a 200 Hz tone has nearly all its energy under 1 kHz: strong alpha ratio, steep spectral balance
    assert _value(tone, "alpha_ratio_mean") > _value(noise, "alpha_ratio_mean") + 10


def test_telephone_copy_is_band_limited_and_companded():
    y = np.random.default_rng(2).normal(0, 0.1, SR).astype(np.float32)
    tel = telephone(y, SR)
    assert tel.dtype == np.float32 and abs(len(tel) - len(y)) <= 3
    spec = np.abs(np.fft.rfft(tel)) ** 2
    freqs = np.fft.rfftfreq(len(tel), 1 / SR)
    in_band = spec[(freqs > 500) & (freqs < 3000)].mean()
    assert spec[freqs > 4200].mean() < 1e-4 * in_band  # nothing above the 8 kHz rate's Nyquist
    assert spec[freqs < 100].mean() < 0.05 * in_band  # the 300 Hz high-pass
    assert len(np.unique(telephone_8k(y, SR))) <= 256  # 8-bit mu-law levels
    x = np.linspace(-1, 1, 1001, dtype=np.float32)
    assert np.abs(mu_law(x) - x).max() < 0.04  # companded, not destroyed


def test_random_crop_lengths_and_short_clips():
    rng = np.random.default_rng(3)
    y = np.arange(5 * SR, dtype=np.float32)
    for _ in range(20):
        c = random_crop(y, SR, rng)
        assert 2 * SR <= len(c) <= 4 * SR and c[0] == int(c[0]) and np.all(np.diff(c) == 1)
    short = np.ones(SR, np.float32)
    assert random_crop(short, SR, rng) is short
