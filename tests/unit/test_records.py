"""RAVDESS filename parsing and the schema's single source of truth."""

import logging

import pytest

from aei_batch.records import EMOTIONS, PREDICTIONS_SCHEMA, PROB_COLUMNS, parse_ravdess_name, stem_of


def test_parses_every_field():
    lab = parse_ravdess_name("/data/Actor_12/03-01-06-01-02-01-12.wav")
    assert lab.modality == "audio-only"
    assert lab.vocal_channel == "speech"
    assert lab.emotion == "fearful"
    assert lab.intensity == "normal"
    assert (lab.statement, lab.repetition, lab.actor) == (2, 1, 12)
    assert lab.gender == "female"


@pytest.mark.parametrize(("code", "emotion"), [(i + 1, e) for i, e in enumerate(EMOTIONS)])
def test_emotion_codes_follow_ravdess_order(code, emotion):
    assert parse_ravdess_name(f"s3://b/k/01-01-{code:02d}-02-01-02-01.mp4").emotion == emotion


def test_odd_actors_are_male():
    assert parse_ravdess_name("03-01-01-01-01-01-23.flac").gender == "male"
    assert parse_ravdess_name("03-01-01-01-01-01-24.flac").gender == "female"


@pytest.mark.parametrize(
    "name", ["call_0001.wav", "interview final.mp4", "03-01-06.wav", "a-b-c-d-e-f-g.wav"]
)
def test_customer_names_give_nulls_without_warning(name, caplog):
    with caplog.at_level(logging.WARNING):
        lab = parse_ravdess_name(name)
    assert lab.emotion is None and lab.actor is None
    assert not caplog.records


@pytest.mark.parametrize(
    "name", ["03-01-09-01-01-01-12.wav", "03-01-06-01-01-01-99.wav", "04-01-06-01-01-01-01.wav"]
)
def test_malformed_ravdess_names_give_nulls_and_a_warning(name, caplog):
    with caplog.at_level(logging.WARNING):
        lab = parse_ravdess_name(name)
    assert lab.emotion is None and lab.actor is None
    assert any("invalid codes" in r.getMessage() for r in caplog.records)


def test_stem_of_handles_keys_and_paths():
    assert stem_of("s3://bucket/a b/03-01-01-01-01-01-01.wav") == "03-01-01-01-01-01-01"
    assert stem_of("/x/y/no_extension") == "no_extension"


def test_schema_has_all_eight_probabilities_in_label_order():
    names = PREDICTIONS_SCHEMA.names
    assert [n for n in names if n.startswith("p_")] == list(PROB_COLUMNS)
    assert list(PROB_COLUMNS) == [f"p_{e}" for e in EMOTIONS]
    for required in (
        "uri",
        "etag",
        "predicted_emotion",
        "second_emotion",
        "model_version",
        "run_id",
        "status",
        "error_code",
        "error_message",
        "scored_at",
        "run_date",
    ):
        assert required in names
