"""Model directories: card round trip, checksums, safe formats, feature-hash refusal."""

import json

import numpy as np
import pytest

from aei_batch.errors import ModelError
from aei_batch.models.card import ModelCard, load_card
from aei_batch.models.loader import load_model
from aei_batch.records import EMOTIONS


def test_card_round_trip(trained_model):
    card = load_card(trained_model)
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert card.label_order == list(EMOTIONS)
    assert card.feature_set["name"] == "seed_mfcc157" and card.feature_set["dim"] == 157
    assert set(card.models) == {"svc", "xgboost", "random_forest"}
    assert card.training["holdout_actors"] == [21, 22, 23, 24]
    assert card.training["train_actors"] == [17, 18, 19, 20]
    for art in card.models.values():
        assert 0.0 <= art.heldout["accuracy"] <= 1.0
        assert np.array(art.heldout["confusion"]).shape == (8, 8)
    assert card.models["xgboost"].file.endswith(".xgb.json")
    assert card.models["svc"].file.endswith(".skops")


@pytest.mark.parametrize("name", ["svc", "xgboost", "random_forest"])
def test_every_model_loads_and_predicts_8_probabilities(trained_model, name):
    model = load_model(str(trained_model), name)
    proba = model.predict_proba8(np.zeros((3, 157), dtype=np.float32))
    assert proba.shape == (3, 8)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_feature_hash_mismatch_is_refused(trained_model, tmp_path):
    d = _copy(trained_model, tmp_path / "m")
    card = json.loads((d / "card.json").read_text())
    card["feature_set"]["hash"] = "0000000000000000"
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="retrain"):
        load_model(str(d))


def test_tampered_artifact_is_refused(trained_model, tmp_path):
    d = _copy(trained_model, tmp_path / "m")
    art = d / "xgboost.xgb.json"
    art.write_bytes(art.read_bytes() + b" ")
    with pytest.raises(ModelError, match="checksum"):
        load_model(str(d), "xgboost")


def test_missing_and_corrupt_model_dirs(tmp_path):
    with pytest.raises(ModelError, match="card.json not found"):
        load_model(str(tmp_path / "nothing"))
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt"):
        load_model(str(tmp_path))
