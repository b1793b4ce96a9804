"""`aei-batch train`'s audio default: voice_audio + blend, trained on the files plus telephone copies and
crops, speaker groups kept apart inside the blend's own selection; held-out rows are the files only."""

import json

import numpy as np
import pytest

from aei_batch.training.train import BEST_FEATURE_SET, BEST_MODELS, TrainOptions, audio_defaults, run_train


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    from aei_batch.synth import make_corpus

    root = tmp_path_factory.mktemp("corpus6")
    make_corpus(root, actors=range(17, 21), statements=(1,), seconds=0.8)
    return root


def test_cli_defaults_name_the_new_model(small_corpus):
    assert audio_defaults(str(small_corpus), "auto", None, None, None) == (
        BEST_FEATURE_SET,
        BEST_MODELS,
        True,
    )
    assert (BEST_FEATURE_SET, BEST_MODELS) == ("voice_audio", ("blend",))


def test_default_training_augments_and_evaluates_on_the_files_only(small_corpus, tmp_path):
    opts = TrainOptions(
        data=str(small_corpus),
        model_dir=str(tmp_path / "m"),
        holdout_actors=[20],
        feature_set=BEST_FEATURE_SET,
        models=BEST_MODELS,
        runner="local",
        progress=False,
        speaker_adaptive=True,
        min_speaker_files=4,
        cache_dir=str(tmp_path / "cache"),
    )
    card = run_train(opts)
    assert card.default_model == "blend"
    assert card.training["n_train"] == 9 * 24  # 3 actors x 8 files, each with 8 augmented copies
    assert card.models["blend"].heldout["n"] == 8  # actor 20's files, no copies
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").glob("*-aug0v3.npz"))
    saved = json.loads((tmp_path / "m" / "card.json").read_text())
    assert saved["feature_set"]["name"] == "voice_audio"
    assert saved["options"]["augmentation"]["copies"] == {
        "0:file": 24,
        "1:telephone": 24,
        "2:crop": 24,
        "3:crop": 24,
        "4:telephone_crop": 24,
        "5:speed_0.9": 24,
        "6:speed_1.1": 24,
        "7:telephone_speed_0.9": 24,
        "8:telephone_speed_1.1": 24,
    }
    assert saved["options"]["augmentation"]["speeds"] == [0.9, 1.1]
    card_md = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert (
        "the file at 0.9x speed, the file at 1.1x speed (each speed copy also as a telephone copy)" in card_md
    )
    from aei_batch.models.tabular import SklearnClassifier

    model = SklearnClassifier.load("blend", tmp_path / "m" / "blend.skops")
    assert model.estimator.temperature_ > 0 and np.isclose(sum(model.estimator.weights_), 1.0)


def test_augmented_copies_run_on_the_chosen_runner_and_do_not_depend_on_it(small_corpus):
    """The copies are featurised by the same stage and runner as the files (one decode per file), each
    file's copies seeded by its name: the pool, other batch sizes and the in-process runner agree."""
    from aei_batch.training.data import AUGMENT_VARIANTS, featurise

    kw = {"progress": False, "augment_seed": 3}
    local = featurise(str(small_corpus), "seed_mfcc157", runner="local", batch_size=16, **kw)
    pool = featurise(str(small_corpus), "seed_mfcc157", runner="pool", batch_size=5, workers=2, **kw)
    n = 32  # 4 actors x 8 files
    assert len(local) == len(pool) == n * len(AUGMENT_VARIANTS)
    np.testing.assert_allclose(local.X, pool.X, rtol=1e-5, atol=1e-5)  # BLAS threads: float rounding only
    assert local.uris == pool.uris and list(local.variant_ids) == list(pool.variant_ids)
    np.testing.assert_array_equal(local.variant_ids, np.repeat(np.arange(len(AUGMENT_VARIANTS)), n))
    plain = featurise(str(small_corpus), "seed_mfcc157", runner="local", progress=False)
    np.testing.assert_allclose(
        plain.X, local.X[:n], rtol=1e-5, atol=1e-5
    )  # the files' own rows are the plain features
    from aei_batch.features.augment import copies, file_seed

    y = np.random.default_rng(0).normal(0, 0.1, 6 * 22050).astype(np.float32)  # long enough to crop
    a, b = copies(y, 22050, file_seed(3, "x.wav")), copies(y, 22050, file_seed(3, "y.wav"))
    assert all(np.array_equal(u, v) for u, v in zip(a, copies(y, 22050, file_seed(3, "x.wav")), strict=True))
    assert not np.array_equal(a[1], b[1])  # another file (or seed): other crops


def test_evaluation_copies_are_made_in_the_stage_and_differ_from_the_files(small_corpus):
    """`featurise_copy` featurises each file's telephone copy or its copy under a noise floor (made in the
    decoder child from the one decode), row for row with the files; an unknown copy is refused."""
    from aei_batch.decode.audio import decode_audio
    from aei_batch.features import get_feature_set
    from aei_batch.features.augment import noise_floor, telephone
    from aei_batch.features.clip import decode_and_extract
    from aei_batch.training.data import featurise, featurise_copy

    plain = featurise(str(small_corpus), "seed_mfcc157", runner="local", progress=False)
    first = plain.uris[0]
    for copy, make in (("telephone", telephone), ("noise", noise_floor)):
        got = featurise_copy(plain, "seed_mfcc157", copy=copy, runner="pool", workers=2)
        assert got.uris == plain.uris and list(got.y) == list(plain.y)
        assert np.abs(got.X - plain.X).max() > 1e-3  # the copy, not the file
        with open(first, "rb") as f:
            clip = decode_audio(f.read(), first)
        want = get_feature_set("seed_mfcc157").extract(make(clip.y, clip.sr), clip.sr)
        np.testing.assert_allclose(got.X[0], want, rtol=1e-4, atol=1e-4)
    with open(first, "rb") as f, pytest.raises(ValueError, match="unknown copy"):
        decode_and_extract(f.read(), first, "seed_mfcc157", sr=22050, max_duration_s=None, copy="x")
