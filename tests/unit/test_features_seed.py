"""The seed study's feature set: 157 values, deterministic, hashed."""

import numpy as np
import pytest

from aei_batch.errors import ConfigError
from aei_batch.features import get_feature_set


@pytest.fixture(scope="module")
def seed():
    return get_feature_set("seed_mfcc157")


def test_shape_and_names(seed):
    y = np.random.default_rng(0).standard_normal(22050 * 2).astype(np.float32) * 0.1
    vec = seed.extract(y, 22050)
    assert vec.shape == (157,) == (seed.dim,)
    assert seed.names[0] == "mfcc_0_min" and seed.names[-1] == "rms_mean"
    assert np.isfinite(vec).all()


def test_layout_matches_librosa(seed):
    import librosa

    y = np.sin(np.linspace(0, 3000, 22050)).astype(np.float32) * 0.3
    vec = seed.extract(y, 22050)
    mfcc = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=13)
    np.testing.assert_allclose(vec[:13], mfcc.min(axis=1), rtol=1e-5)
    np.testing.assert_allclose(vec[39:52], mfcc.mean(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(vec[156], librosa.feature.rms(y=y).mean(), rtol=1e-5)


def test_deterministic_and_finite_on_silence_and_short_clips(seed):
    y = np.random.default_rng(1).standard_normal(22050).astype(np.float32) * 0.1
    np.testing.assert_array_equal(seed.extract(y, 22050), seed.extract(y.copy(), 22050))
    assert np.isfinite(seed.extract(np.zeros(22050, np.float32), 22050)).all()
    assert np.isfinite(seed.extract(y[: int(0.25 * 22050)], 22050)).all()


def test_hash_is_stable_and_depends_on_params(seed):
    from dataclasses import replace

    assert seed.param_hash == get_feature_set("seed_mfcc157").param_hash
    assert replace(seed, params={**seed.params, "n_mfcc": 20}).param_hash != seed.param_hash


def test_wrong_rate_and_unknown_set(seed):
    with pytest.raises(ValueError):
        seed.extract(np.zeros(16000, np.float32), 16000)
    with pytest.raises(ConfigError):
        get_feature_set("no_such_set")
