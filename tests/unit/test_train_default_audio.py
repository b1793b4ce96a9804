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
    assert card.training["n_train"] == 5 * 24  # 3 actors x 8 files, each with 4 augmented copies
    assert card.models["blend"].heldout["n"] == 8  # actor 20's files, no copies
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").glob("*-aug0.npz"))
    saved = json.loads((tmp_path / "m" / "card.json").read_text())
    assert saved["feature_set"]["name"] == "voice_audio"
    assert saved["options"]["augmentation"]["copies"] == {
        "0:file": 24,
        "1:telephone": 24,
        "2:crop": 24,
        "3:crop": 24,
        "4:telephone_crop": 24,
    }
    from aei_batch.models.tabular import SklearnClassifier

    model = SklearnClassifier.load("blend", tmp_path / "m" / "blend.skops")
    assert model.estimator.temperature_ > 0 and np.isclose(sum(model.estimator.weights_), 1.0)
