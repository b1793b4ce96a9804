"""Generated calls for `evaluate`: where each clip's speech lies, and which windows count."""

import numpy as np
import pytest

from aei_batch.training.calls import Span, build_call, label_at, speech_span, turns, window_agreement

SR = 8000
TOL = 2 * 512 / SR  # spans are measured on 512-sample frames


def _clip(speech_s: float, lead_s: float = 0.25, tail_s: float = 0.25) -> np.ndarray:
    """A tone with silent lead and tail (as RAVDESS files have)."""
    t = np.arange(int(speech_s * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.concatenate([np.zeros(int(lead_s * SR)), tone, np.zeros(int(tail_s * SR))]).astype(np.float32)


def test_speech_span_skips_the_silent_lead_and_tail():
    a, b = speech_span(_clip(1.0))
    assert abs(a - 0.25 * SR) <= 512 and abs(b - 1.25 * SR) <= 512


def test_build_call_places_each_clip_after_a_pause_and_records_its_speech():
    clips = [("happy", _clip(1.0)), ("sad", _clip(1.5))]
    audio, spans = build_call(clips, SR, seed=3)
    again, _ = build_call(clips, SR, seed=3)
    np.testing.assert_array_equal(audio, again)  # deterministic for a seed
    assert audio.shape[0] == 1 and [s.emotion for s in spans[0]] == ["happy", "sad"]
    first, second = spans[0]
    assert 1.0 + 0.25 - TOL <= first.start_s <= 2.0 + 0.25 + TOL  # after a 1-2 s pause and the lead
    assert abs((first.end_s - first.start_s) - 1.0) < TOL and abs((second.end_s - second.start_s) - 1.5) < TOL
    assert second.start_s - first.end_s >= 1.0 + 0.5 - TOL  # tail + pause + lead between them
    loud = np.abs(audio[0]) > 0.1
    inside = np.zeros_like(loud)
    for s in spans[0]:
        inside[int(s.start_s * SR) : int(s.end_s * SR)] = True
    assert not (loud & ~inside).any()  # no speech outside the recorded spans
    assert loud[inside].mean() > 0.5


def test_turn_taking_puts_each_speaker_on_its_own_channel():
    a = [("angry", _clip(1.0)), ("calm", _clip(1.0))]
    b = [("fearful", _clip(1.0))]
    both, chans = turns(a, b)
    assert chans == [0, 1, 0] and [e for e, _ in both] == ["angry", "fearful", "calm"]
    audio, spans = build_call(both, SR, seed=1, channels=chans)
    assert audio.shape[0] == 2
    assert [s.emotion for s in spans[0]] == ["angry", "calm"] and [s.emotion for s in spans[1]] == ["fearful"]
    turn = spans[1][0]
    mid = slice(int(turn.start_s * SR), int(turn.end_s * SR))
    assert np.abs(audio[0, mid]).max() < 0.01  # channel 0 is silent while channel 1 speaks


def test_window_agreement_counts_windows_centred_in_speech_on_their_own_channel():
    truth = {
        ("call.wav", 0): [Span("happy", 1.0, 3.0), Span("sad", 5.0, 7.0)],
        ("call.wav", 1): [Span("angry", 3.2, 4.8)],
    }
    seg = [
        {
            "uri": "/x/call.wav",
            "channel": 0,
            "start_s": 0.5,
            "end_s": 3.5,
            "top_emotion": "happy",
        },  # 2.0: hit
        {
            "uri": "/x/call.wav",
            "channel": 0,
            "start_s": 2.5,
            "end_s": 5.5,
            "top_emotion": "happy",
        },  # 4.0: pause
        {
            "uri": "/x/call.wav",
            "channel": 0,
            "start_s": 4.5,
            "end_s": 7.5,
            "top_emotion": "happy",
        },  # 6.0: miss
        {
            "uri": "/x/call.wav",
            "channel": 1,
            "start_s": 2.5,
            "end_s": 5.5,
            "top_emotion": "angry",
        },  # 4.0: hit
        {
            "uri": "/x/call.wav",
            "channel": 1,
            "start_s": 0.0,
            "end_s": 3.0,
            "top_emotion": "angry",
        },  # 1.5: pause
        {"uri": "/x/other.wav", "channel": 0, "start_s": 0.0, "end_s": 3.0, "top_emotion": "sad"},  # no truth
    ]
    res = window_agreement(seg, truth)
    assert res == {"n_windows": 5, "n_counted": 3, "n_excluded": 2, "share": 2 / 3, "ece": None}
    assert label_at(truth[("call.wav", 0)], 3.0) is None  # spans are half-open
    mixed = [{**seg[0], "channel": None}]  # a mixed-down file's segments have no channel: channel 0
    assert window_agreement(mixed, truth)["n_counted"] == 1
    assert np.isnan(window_agreement([], truth)["share"])


def test_window_agreement_measures_the_counted_windows_calibration():
    """With the segments' probability columns, the report gives the counted windows' ECE: windows sure
    of a wrong emotion are badly calibrated, the pause's window is not counted."""
    from aei_batch.records import EMOTIONS, PROB_COLUMNS

    truth = {("call.wav", 0): [Span("happy", 1.0, 3.0), Span("sad", 5.0, 7.0)]}

    def seg(start, top, conf):
        p = np.full(8, (1 - conf) / 7)
        p[EMOTIONS.index(top)] = conf
        return {
            "uri": "call.wav",
            "channel": 0,
            "start_s": start,
            "end_s": start + 3.0,
            "top_emotion": top,
            **dict(zip(PROB_COLUMNS, p.tolist(), strict=True)),
        }

    sure = [seg(0.5, "happy", 0.9), seg(4.5, "happy", 0.9), seg(2.5, "angry", 0.99)]  # hit, miss, pause
    res = window_agreement(sure, truth)
    assert res["n_counted"] == 2 and res["share"] == 0.5
    assert res["ece"] == pytest.approx(0.4)  # confidence 0.9, accuracy 0.5
    honest = [seg(0.5, "happy", 0.5), seg(4.5, "happy", 0.5)]
    assert window_agreement(honest, truth)["ece"] == pytest.approx(0.0)
