"""What a model may be used for: licence and use fields, MODEL_CARD.md, the licence line of summaries."""

from __future__ import annotations

import json

from aei_batch.models.card import ArtifactInfo, ModelCard, load_card
from aei_batch.models.model_card import (
    MODEL_CARD_MD,
    SYNTHETIC_MARKER,
    describe_training_data,
    fill_card,
    licence_line,
    render_model_card,
    write_model_card,
)
from aei_batch.records import EMOTIONS

RAVDESS_URIS = ["/d/Actor_01/03-01-05-01-01-01-01.wav", "/d/Actor_02/03-01-04-02-02-01-02.wav"]


def _card(tmp_path) -> ModelCard:
    heldout = {
        "n": 96,
        "accuracy": 0.625,
        "accuracy_ci95": (0.525, 0.715),
        "uar": 0.61,
        "macro_f1": 0.6,
        "per_class_recall": {e: 0.3 + 0.08 * i for i, e in enumerate(EMOTIONS)},
    }
    return ModelCard(
        model_version="20261129T000000Z-1234abcd",
        created_at="2026-11-29T00:00:00+00:00",
        label_order=list(EMOTIONS),
        feature_set={"name": "rich_audio", "hash": "abc"},
        default_model="ensemble",
        models={"ensemble": ArtifactInfo("ensemble.skops", "sklearn", "0" * 64, list(EMOTIONS), heldout)},
        training={
            "source": str(tmp_path),
            "n_files": 480,
            "n_train": 384,
            "n_heldout": 96,
            "train_actors": [1, 2, 3, 4],
            "holdout_actors": [21, 22],
            "train_files": RAVDESS_URIS,
        },
        options={"speaker_adaptive": True},
    )


def test_ravdess_named_training_data_makes_the_model_non_commercial(tmp_path):
    lic = describe_training_data(str(tmp_path), RAVDESS_URIS)
    assert lic["spdx"] == "CC-BY-NC-SA-4.0" and lic["commercial_use"] is False
    assert "RAVDESS" in lic["inherited_from"]
    card = _card(tmp_path)
    fill_card(card, str(tmp_path))
    line = licence_line(card)
    assert line.startswith("CC-BY-NC-SA-4.0: non-commercial use only") and "RAVDESS" in line
    assert any("natural" in x for x in card.use["limitations"])
    assert any("telephone" in x.lower() for x in card.use["limitations"])
    assert any("inner state" in x for x in card.use["limitations"])
    assert any("speaker group" in x for x in card.use["limitations"])  # the card's model is speaker-adaptive


def test_synthetic_corpus_says_what_it_is(tmp_path):
    (tmp_path / SYNTHETIC_MARKER).write_text("{}")
    card = _card(tmp_path)
    fill_card(card, str(tmp_path))
    assert card.licence["inherited_from"] is None and "synthetic" in card.licence["name"]
    assert "plumbing" in " ".join(card.use["limitations"])
    assert "synthetic" in licence_line(card)


def test_unknown_names_get_an_unknown_licence(tmp_path):
    lic = describe_training_data(str(tmp_path), ["/d/call-0001.wav"])
    assert lic["spdx"] is None and lic["commercial_use"] is None


def test_model_card_md_has_licence_use_data_and_results(tmp_path):
    card = _card(tmp_path)
    fill_card(card, str(tmp_path))
    path = write_model_card(tmp_path, card)
    assert path.name == MODEL_CARD_MD
    md = path.read_text()
    for needle in (
        "**CC-BY-NC-SA-4.0**",
        "## Intended use",
        "## Out of scope",
        "## Limitations",
        "Held out (whole speakers, never seen in training): 21, 22 (96 files).",
        "| ensemble (default) | speaker-adaptive | 96 | 0.625 | 0.525-0.715 | 0.610 | 0.600 |",
        "| neutral | 0.300 |",
        "Weakest classes: neutral (0.300), calm (0.380).",
    ):
        assert needle in md, needle
    assert md == render_model_card(card)


def test_cards_written_before_the_licence_fields_still_load(tmp_path):
    card = _card(tmp_path)
    data = json.loads(card.to_json())
    del data["licence"], data["use"]
    (tmp_path / "card.json").write_text(json.dumps(data))
    old = load_card(tmp_path)
    assert old.licence == {} and old.use == {} and licence_line(old) == ""
    assert "unknown" in render_model_card(old)


def test_trained_model_directory_has_its_model_card(trained_model):
    card = load_card(trained_model)
    assert "synthetic" in card.licence["name"]  # the test corpus is aei_batch.synth's
    md = (trained_model / MODEL_CARD_MD).read_text()
    assert "synthetic" in md and "## Evaluation on held-out speakers" in md
