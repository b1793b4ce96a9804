"""Speaker-adaptive normalisation, actor-grouped folds, and the grouped hyperparameter search."""

import numpy as np
import pytest

from aei_batch.errors import ConfigError
from aei_batch.scoring.speaker import GlobalStats, compile_pattern, normalise, speaker_from_name
from aei_batch.training.cv import actor_folds
from aei_batch.training.data import LabelledSet


def _data(n_per=12, speakers=("a", "b"), dim=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack(
        [rng.normal(loc=10 * (i + 1), scale=i + 1, size=(n_per, dim)) for i in range(len(speakers))]
    )
    return X, [s for s in speakers for _ in range(n_per)]


def test_each_speaker_is_z_scored_with_its_own_statistics():
    X, spk = _data()
    Z, rep = normalise(X, spk, GlobalStats.fit(X), min_files=10)
    for s in ("a", "b"):
        rows = np.array(spk) == s
        np.testing.assert_allclose(Z[rows].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[rows].std(axis=0), 1, atol=1e-4)
    assert (rep.speakers, rep.own_stats, rep.fallback_files) == (2, 2, 0)


def test_speakers_under_the_threshold_and_unknown_speakers_use_global_statistics():
    X, spk = _data(n_per=12)
    spk = spk[:12] + ["b"] * 5 + [None] * 7  # b has 5 files, 7 rows have no speaker
    g = GlobalStats(np.full(3, 5.0), np.full(3, 2.0))
    Z, rep = normalise(X, spk, g, min_files=10)
    np.testing.assert_allclose(Z[12:], (X[12:] - 5.0) / 2.0, rtol=1e-5)
    np.testing.assert_allclose(Z[:12].mean(axis=0), 0, atol=1e-5)
    assert (rep.speakers, rep.own_stats, rep.fallback_files) == (2, 1, 12)


def test_constant_feature_within_a_speaker_stays_finite():
    X = np.ones((12, 2))
    X[:, 1] = np.arange(12)
    Z, _ = normalise(X, ["a"] * 12, GlobalStats(np.zeros(2), np.ones(2)), min_files=10)
    assert np.isfinite(Z).all()


def test_global_stats_round_trip_through_json():
    X, _ = _data()
    g = GlobalStats.fit(X)
    back = GlobalStats.from_json(g.to_json())
    np.testing.assert_allclose(back.mean, g.mean)
    np.testing.assert_allclose(back.std, g.std)


def test_min_files_and_patterns_are_validated():
    X, spk = _data()
    with pytest.raises(ConfigError, match="min-speaker-files"):
        normalise(X, spk, GlobalStats.fit(X), min_files=1)
    with pytest.raises(ConfigError, match="capturing group"):
        compile_pattern(r"spk\d+")
    with pytest.raises(ConfigError, match="not a valid regex"):
        compile_pattern(r"(spk")
    rx = compile_pattern(r"^(spk\d+)_")
    assert speaker_from_name("s3://b/x/spk12_call3.wav", rx) == "spk12"
    assert speaker_from_name("other.wav", rx) is None


@pytest.mark.parametrize("n_folds", [2, 4, 5, 10])
def test_actor_folds_never_share_an_actor_and_test_each_actor_once(n_folds):
    actors = np.repeat(np.arange(1, 21), 7)
    tested = []
    for tr, te in actor_folds(actors, n_folds):
        assert not set(actors[tr]) & set(actors[te])
        assert len(tr) + len(te) == len(actors)
        tested.extend(np.unique(actors[te]))
    assert sorted(tested) == list(range(1, 21))


def test_five_folds_mix_male_and_female_actors():
    actors = np.repeat(np.arange(1, 21), 2)
    for _, te in actor_folds(actors, 5):
        genders = set(actors[te] % 2)
        assert genders == {0, 1}


def test_too_few_actors_for_the_folds_fails_fast():
    with pytest.raises(ConfigError, match="folds"):
        actor_folds(np.array([1, 1, 2, 2]), 3)


def test_search_is_deterministic_and_picks_from_the_grid():
    from aei_batch.training.search import search

    rng = np.random.default_rng(0)
    y = np.tile(np.arange(8), 16)
    actors = np.repeat(np.arange(1, 9), 16)
    X = rng.normal(size=(len(y), 6)) + y[:, None] * 0.5
    data = LabelledSet(X, y, actors, [str(i) for i in range(len(y))], {})
    grid = {
        "svc_tuned": [{"C": 1.0, "gamma_scale": 0.3}, {"C": 10.0, "gamma_scale": 1.0}],
        "logreg": [{"C": 0.01}, {"C": 1.0}],
    }
    a = search(data, runner="local", n_folds=4, grid=grid)
    b = search(data, runner="local", n_folds=4, grid=grid)
    assert a == b
    assert a["svc_tuned"] in grid["svc_tuned"] and a["logreg"] in grid["logreg"]
