"""`call_windows`: the training actors' generated calls, featurised as `score` featurises a long recording,
for the blend's window temperature."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np

from aei_batch.records import EMOTIONS, parse_ravdess_name
from aei_batch.training.calls import call_windows, speaker_of


def test_speaker_of_reads_the_actor_of_each_channel_from_the_call_name():
    assert speaker_of("mono16k-07.wav", 0) == 7
    assert speaker_of("stereo8k-07-12.wav", 0) == 7
    assert speaker_of("stereo8k-07-12.wav", 1) == 12


def test_call_windows_are_labelled_with_the_clip_under_them_and_grouped_per_channel(tmp_path: Path):
    from aei_batch.features import get_feature_set
    from aei_batch.synth import make_corpus

    make_corpus(tmp_path, actors=[17, 18], statements=(1,), seconds=1.5)
    # each actor speaks other emotions, so a window given the other channel's clip would show
    own_emotions = {17: {"angry", "sad"}, 18: {"happy", "calm"}}
    files = sorted(
        str(p)
        for p in tmp_path.rglob("*.wav")
        if parse_ravdess_name(str(p)).emotion in own_emotions[int(parse_ravdess_name(str(p)).actor or 0)]
    )
    names = [parse_ravdess_name(f) for f in files]
    data = types.SimpleNamespace(
        uris=files,
        actors=np.array([int(n.actor) for n in names]),
        y=np.array([EMOTIONS.index(str(n.emotion)) for n in names]),
    )
    X, y, actors, groups = call_windows(data, "voice_audio", seed=0, clips_per_call=4)
    assert X.shape == (len(y), get_feature_set("voice_audio").dim) and len(y) >= 8
    assert np.isfinite(X).all()
    assert set(actors) == {17, 18} and len(groups) == len(y)
    # a mono call and a stereo call per actor; each channel is its own group, and its actor is the name's
    assert {g.split("/")[0] for g in groups} <= {
        "mono16k-17.wav",
        "mono16k-18.wav",
        "stereo8k-17-18.wav",
        "stereo8k-18-17.wav",
    }
    for g, a in zip(groups, actors, strict=True):
        name, ch = g.split("/ch")
        assert speaker_of(name, int(ch)) == a
    # every label is an emotion of that actor's own clips (the clip under the window's centre)
    for a, own in own_emotions.items():
        assert {EMOTIONS[i] for i in y[actors == a]} <= own, a
    assert {EMOTIONS[i] for i in y} == own_emotions[17] | own_emotions[18]
    # deterministic for a seed
    X2, y2, _, g2 = call_windows(data, "voice_audio", seed=0, clips_per_call=4)
    np.testing.assert_array_equal(X, X2)
    assert list(y) == list(y2) and groups == g2
