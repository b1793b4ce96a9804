"""The rich feature sets: layout, determinism, finite values on awkward input, pitch accuracy, and the
fast implementation against the reference it replaced (on real speech too when the RAVDESS recordings
are in ../shared/datasets/ravdess-speech, or where AEI_RAVDESS_DIR points).
"""

import os

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


# ---------------------------------------------------------------- the fast path against the reference
#
# `rich_audio` and `logmel_patch` are computed in one blocked pass without librosa; the code they
# replaced is kept verbatim in aei_batch.features.rich_reference. Models trained before keep loading
# (same name, version, parameters, hash), so the vectors must stay the reference's: every column
# within RTOL of its value, or ATOL absolutely for columns near zero (measured worst: 4e-6 of a
# column's magnitude, from float32 rounding of the mel product and the power spectrum).

RTOL, ATOL = 1e-4, 1e-4
RNG = np.random.default_rng(11)


def _speechlike(seconds: float, f0: float = 140.0) -> np.ndarray:
    """Harmonics with a wandering pitch, syllable-like bursts and pauses, over a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 1.3 * t), 0, None) ** 2
    return (0.3 * env * y + 0.002 * RNG.standard_normal(t.size)).astype(np.float32)


SIGNALS = {
    "speechlike 3.7 s": _speechlike(3.7),
    "speechlike high 2 s": _speechlike(2.0, f0=260.0),
    "synth angry": synth_clip("angry", 18, sr=SR, seconds=2.5),
    "synth sad": synth_clip("sad", 3, sr=SR, seconds=3.0),
    "tone in silence": np.concatenate(
        [np.zeros(SR // 2, np.float32), _tone(110.0), np.zeros(SR // 3, np.float32)]
    ),
    "noise": (0.1 * RNG.standard_normal(2 * SR)).astype(np.float32),
    "clipped": np.clip(_speechlike(1.5) * 20, -1, 1).astype(np.float32),
    "quiet": (_speechlike(1.0) * 1e-4).astype(np.float32),
    "odd length": _speechlike(0.777)[:17_131],
    "long 20 s": np.tile(_speechlike(4.0), 5),
    **{f"{n} samples": _speechlike(1.0)[:n] for n in (0, 1, 100, 1023, 1024, 1300, 5000)},
}


def _assert_matches(name: str, y: np.ndarray) -> None:
    from aei_batch.features import rich_reference

    for set_name, ref_fn in (
        ("rich_audio", rich_reference.rich_audio),
        ("logmel_patch", rich_reference.logmel_patch),
    ):
        fs = get_feature_set(set_name)
        ref, got = ref_fn(y, SR), fs.extract(y, SR)
        assert got.shape == ref.shape == (fs.dim,), (name, set_name)
        bad = ~np.isclose(got, ref, rtol=RTOL, atol=ATOL)
        assert not bad.any(), f"{name} {set_name}: " + ", ".join(
            f"{fs.names[i]} {got[i]!r} vs {ref[i]!r}" for i in np.flatnonzero(bad)[:5]
        )


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("name", list(SIGNALS))
def test_matches_the_reference_on_generated_signals(name):
    _assert_matches(name, SIGNALS[name])


def _ravdess_clips(n: int) -> list[tuple[str, np.ndarray]]:
    from pathlib import Path

    from aei_batch.decode.audio import decode_audio

    default = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ravdess-speech"
    root = Path(os.environ.get("AEI_RAVDESS_DIR", default))  # shared/ beside the checkout, as in CI
    files = sorted(root.glob("Actor_*/*.*"))
    if not files:
        pytest.skip(f"no RAVDESS recordings under {root}")
    step = max(1, len(files) // n)
    return [(f.name, decode_audio(f.read_bytes(), f.name).y) for f in files[::step][:n]]


def test_matches_the_reference_on_real_speech():
    for name, y in _ravdess_clips(8):
        _assert_matches(name, y)


def test_identity_unchanged_so_trained_models_load():
    from aei_batch.features import rich

    assert get_feature_set("rich_audio").fn is rich.rich_audio
    assert get_feature_set("rich_audio").param_hash == "a54a5a85409694d7"  # as before the rewrite
    assert get_feature_set("logmel_patch").param_hash == "37769ee32a5dbe1e"


@pytest.mark.parametrize("f0", [90.0, 220.0])
def test_yin_matches_the_reference(f0):
    from aei_batch.features import rich_reference

    for y in (_tone(f0, 2.0), _speechlike(2.0, f0), (0.2 * RNG.standard_normal(SR)).astype(np.float32)):
        kw = {"frame": 1024, "hop": 256, "fmin": 65, "fmax": 500, "threshold": 0.2}
        ref_f0, ref_dip = rich_reference.yin_f0(y, SR, **kw)
        got_f0, got_dip = yin_f0(y, SR, **kw)
        np.testing.assert_array_equal(got_f0 > 0, ref_f0 > 0)
        np.testing.assert_allclose(got_f0, ref_f0, rtol=1e-9)
        np.testing.assert_allclose(got_dip, ref_dip, rtol=1e-6, atol=1e-9)


def test_power_spectrum_and_contrast_are_librosas():
    import librosa

    from aei_batch.features import rich

    y = _speechlike(1.2)
    _, frames = rich._frames64(y, 1024, 256)
    power = rich._power_block(np.fft.rfft(frames, axis=1)).copy()
    ref = np.abs(librosa.stft(y, n_fft=1024, hop_length=256)) ** 2
    np.testing.assert_allclose(power.T, ref, rtol=1e-5, atol=1e-6 * ref.max())
    # contrast from the same magnitudes: librosa's numbers to the bit
    mag = np.sqrt(ref).T.copy()
    bands = rich._contrast_bands(SR, 1024, *rich._CONTRAST)
    valley, peak = np.empty((7, len(mag))), np.empty((7, len(mag)))
    rich._contrast_block(mag, bands, valley, peak)
    got = rich._power_to_db(peak) - rich._power_to_db(valley)
    np.testing.assert_array_equal(got, librosa.feature.spectral_contrast(S=mag.T, sr=SR, n_fft=1024))


def test_reused_buffers_carry_nothing_between_clips_or_threads():
    """Each thread reuses its scratch buffers: a clip's vector must not depend on what ran before it,
    nor on another thread extracting at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    fs = get_feature_set("rich_audio")
    short, long_ = SIGNALS["odd length"], SIGNALS["long 20 s"]
    fresh = fs.extract(short, SR)
    fs.extract(long_, SR)
    np.testing.assert_array_equal(fs.extract(short, SR), fresh)
    clips = [short, long_, SIGNALS["noise"], SIGNALS["synth sad"]] * 3
    alone = [fs.extract(y, SR) for y in clips]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda y: fs.extract(y, SR), clips))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 10, 11, 57, 211])
def test_percentiles_are_numpys_to_the_bit(n):
    from aei_batch.features.rich import percentiles

    m = RNG.standard_normal((6, n)) * 50
    m[::2] = np.round(m[::2])  # ties
    for pct in ((10, 50, 90), (5, 50, 95), (0, 33, 100)):
        np.testing.assert_array_equal(percentiles(m, pct), np.percentile(m, pct, axis=1))
        np.testing.assert_array_equal(percentiles(m[1], pct), np.percentile(m[1], pct))


def test_long_clips_leave_no_large_buffer_behind(monkeypatch):
    from aei_batch.features import rich

    fs = get_feature_set("rich_audio")
    y = SIGNALS["long 20 s"]
    kept = fs.extract(y, SR)
    monkeypatch.setattr(rich, "_KEEP_BYTES", 1024)  # every buffer fresh: the same numbers
    np.testing.assert_array_equal(fs.extract(y, SR), kept)
    monkeypatch.undo()
    fs.extract(np.tile(y, 6), SR)  # 120 s: its whole-signal scratch is over the limit
    assert max(b.nbytes for b in rich._WS.bufs.values()) <= rich._KEEP_BYTES


def test_active_frames_without_a_floor_rule_is_the_references_to_the_bit():
    """v1's active frames (no `floor`) are the reference's exactly, a frame on the threshold included: a
    model trained on v1 must see the frames it was trained on."""
    from aei_batch.features import rich_reference
    from aei_batch.features.rich import active_frames

    rng = np.random.default_rng(3)
    for _ in range(200):
        db = (rng.normal(-30, 25, rng.integers(3, 400))).astype(np.float32)
        db[rng.integers(len(db))] = db.max() - 40  # a frame exactly on the threshold
        np.testing.assert_array_equal(active_frames(db, 40.0), rich_reference.active_frames(db, 40.0))
