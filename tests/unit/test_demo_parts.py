"""The demo's honest parts: the synthetic call's layout, the window comparison, the corpus marker."""

from __future__ import annotations

import json

import soundfile as sf

from aei_batch.demo import CALL_TURNS, PAUSE_S, TURN_S, compare_windows, expected_turn
from aei_batch.models.model_card import SYNTHETIC_MARKER, is_synthetic
from aei_batch.records import SEG
from aei_batch.synth import make_call, make_corpus


def test_the_call_plays_its_turns_with_pauses(tmp_path):
    call = make_call(tmp_path / "c.wav", emotions=CALL_TURNS, seconds_each=TURN_S, pause_s=PAUSE_S, sr=8000)
    info = sf.info(str(call))
    assert abs(info.duration - (len(CALL_TURNS) * (TURN_S + PAUSE_S) + PAUSE_S)) < 0.01
    assert expected_turn(0.2) == "-" and expected_turn(PAUSE_S + 0.1) == CALL_TURNS[0]
    assert expected_turn(PAUSE_S + TURN_S + 0.1) == "-"
    assert expected_turn(3 * PAUSE_S + 2 * TURN_S + 0.5) == CALL_TURNS[2]
    assert expected_turn(info.duration + 5) == "-"


def test_window_comparison_counts_agreement():
    rows = [
        {SEG.start_s: PAUSE_S, SEG.end_s: PAUSE_S + 1.0, SEG.top_emotion: CALL_TURNS[0]},
        {SEG.start_s: 2 * PAUSE_S + 2 * TURN_S, SEG.end_s: 2 * PAUSE_S + 3 * TURN_S, SEG.top_emotion: "sad"},
    ]
    text = compare_windows(rows)
    assert "1 of 2 windows agree" in text
    assert "played:    neu hap" in text and "predicted: neu sad" in text


def test_the_synthetic_corpus_says_what_it_is(tmp_path):
    make_corpus(tmp_path, actors=[21], statements=(1,), seconds=0.5, sr=8000)
    note = json.loads((tmp_path / SYNTHETIC_MARKER).read_text())
    assert "not speech" in note["what"]
    assert is_synthetic(str(tmp_path)) and not is_synthetic(str(tmp_path / "Actor_21"))
