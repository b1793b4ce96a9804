"""The rich feature sets: layout, determinism, finite values on awkward input, pitch accuracy."""

import numpy as np
import pytest

from aei_batch.features import get_feature_set, list_feature_sets
from aei_batch.features.rich import active_frames, yin_f0
from aei_batch.synth import synth_clip

SR = 22050


def _tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.mark.parametrize("name", ["rich_audio", "logmel_patch"])
def test_registered_with_names_matching_the_vector(name):
    fs = get_feature_set(name)
    assert fs in list_feature_sets()
    assert len(set(fs.names)) == fs.dim
    vec = fs.extract(_tone(180.0), SR)
    assert vec.shape == (fs.dim,) and vec.dtype == np.float32


@pytest.mark.parametrize("name", ["rich_audio", "logmel_patch"])
def test_deterministic(name):
    fs = get_feature_set(name)
    y = synth_clip("angry", 18, sr=SR, seconds=1.5)
    np.testing.assert_array_equal(fs.extract(y, SR), fs.extract(y.copy(), SR))


@pytest.mark.parametrize("name", ["rich_audio", "logmel_patch"])
@pytest.mark.parametrize("n", [0, 1, 100, 1023, 1024, 5000])
def test_finite_on_silence_and_short_clips(name, n):
    fs = get_feature_set(name)
    for y in (np.zeros(n, np.float32), np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)):
        assert np.isfinite(fs.extract(y, SR)).all()


def test_rejects_other_sample_rates():
    with pytest.raises(ValueError, match="22050"):
        get_feature_set("rich_audio").extract(np.zeros(16000, np.float32), 16000)


def test_hashes_differ_between_sets():
    hashes = {fs.param_hash for fs in list_feature_sets()}
    assert len(hashes) == len(list_feature_sets())


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0, 330.0])
def test_yin_finds_the_pitch_of_a_harmonic_tone(f0):
    est, aperiodicity = yin_f0(_tone(f0), SR, frame=1024, hop=256, fmin=65, fmax=500, threshold=0.2)
    voiced = est[5:-5]
    assert (voiced > 0).all()
    assert np.median(voiced) == pytest.approx(f0, rel=0.02)
    assert np.median(aperiodicity[5:-5]) < 0.1


def test_yin_calls_noise_unvoiced_mostly():
    noise = np.random.default_rng(0).normal(0, 0.3, SR).astype(np.float32)
    est, _ = yin_f0(noise, SR, frame=1024, hop=256, fmin=65, fmax=500, threshold=0.2)
    assert (est > 0).mean() < 0.3


def test_pitch_and_duration_features_track_the_signal():
    fs = get_feature_set("rich_audio")
    names = list(fs.names)
    quiet = np.zeros(SR // 2, np.float32)
    low = fs.extract(np.concatenate([quiet, _tone(110.0, 1.0), quiet]), SR)
    high = fs.extract(np.concatenate([quiet, _tone(220.0, 2.0), quiet]), SR)
    semitones = high[names.index("f0_st_mean")] - low[names.index("f0_st_mean")]
    assert semitones == pytest.approx(12.0, abs=0.3)  # an octave
    assert low[names.index("active_s")] == pytest.approx(1.0, abs=0.1)  # silence trimmed
    assert high[names.index("active_s")] == pytest.approx(2.0, abs=0.1)
    assert high[names.index("voiced_ratio")] > 0.9


def test_active_frames_keeps_at_least_three():
    db = np.full(10, -100.0)
    assert active_frames(db, 40).all()
    db[4] = 0
    assert active_frames(db, 40).sum() == 3 or active_frames(db, 40).all()
