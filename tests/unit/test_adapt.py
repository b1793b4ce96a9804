"""Per-group adaptation of the class means (models/adapt.py) in the blend, in training and in scoring."""

import numpy as np
import pyarrow as pa
import pytest

from aei_batch.models.adapt import TAUS, AdaptationSpace, per_row_stats, predict_adapted
from aei_batch.models.ensemble import WeightedBlend, build_models

CANDS = (("lda", "lda_shrunk", 0), ("lr", "logreg", 0))


def _groups_data(seed: int = 0, n_groups: int = 12, per: int = 48, dim: int = 10):
    """Each group (a speaker) expresses each class with its own offset from the class mean, larger than the
    noise: a model of the training groups misplaces a new group's classes, its own files can move them."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=1.0, size=(8, dim))
    y = np.tile(np.arange(8), n_groups * per // 8)
    g = np.repeat(np.arange(n_groups), per)
    offsets = rng.normal(scale=1.0, size=(n_groups, 8, dim))
    X = means[y] + offsets[g, y] + rng.normal(size=(len(y), dim))
    # the pipeline z-scores each group with its own statistics before the model
    for k in range(n_groups):
        m = g == k
        X[m] = (X[m] - X[m].mean(0)) / X[m].std(0)
    return X, y, g


def test_statistics_add_up_over_chunks_and_a_large_tau_leaves_the_means():
    X, y, _ = _groups_data()
    space = AdaptationSpace.fit(X, y, 8)
    assert space.proj.shape == (10, 7) and space.means.shape == (8, 7)
    whole = space.stats(X[:100])
    np.testing.assert_allclose(space.stats(X[:37]) + space.stats(X[37:100]), whole)
    np.testing.assert_allclose(whole[:, 0].sum(), 100)  # posteriors of 100 rows
    np.testing.assert_allclose(space.adapted_means(whole, 1e12), space.means, atol=1e-6)
    assert np.abs(space.delta(X[:5], space.means)).max() == 0


def test_blend_chooses_adaptation_inside_its_training_rows_and_it_helps_new_groups():
    X, y, g = _groups_data()
    train, test = g < 9, g >= 9
    m = WeightedBlend(candidates=CANDS).fit(X[train], y[train], groups=g[train], adapt_groups=g[train])
    assert m.adapts and m.adapt_tau_ in TAUS[1:]
    assert set(m.adapt_scores_) == {str(t) for t in TAUS}
    assert max(m.adapt_scores_.values()) > m.adapt_scores_["None"]
    plain = (m.predict(X[test]) == y[test]).mean()
    adapt = per_row_stats(m.adaptation_stats, X[test], list(g[test].astype(str)), 10)
    adapted = (m.predict(X[test], adapt=adapt) == y[test]).mean()
    assert adapted > plain + 0.02, (plain, adapted)
    # a row without statistics (a group under the minimum) is predicted as without adaptation
    none = [None] * int(test.sum())
    np.testing.assert_array_equal(m.decision_function(X[test], none), m.decision_function(X[test]))


def test_no_adapt_groups_no_adaptation_and_old_blends_do_not_adapt():
    X, y, g = _groups_data(1)
    m = WeightedBlend(candidates=CANDS).fit(X, y, groups=g)
    assert not m.adapts and m.adaptation_stats(X) is None
    adapt = [np.ones((8, 8))] * len(X)
    np.testing.assert_array_equal(m.predict_proba(X, adapt=adapt), m.predict_proba(X))
    fitted = WeightedBlend(candidates=CANDS).fit(X, y, groups=g, adapt_groups=g)
    del fitted.adapt_tau_  # what skops restores from a blend saved before adaptation existed
    assert not fitted.adapts


def test_adaptation_round_trips_through_skops_and_reaches_the_classifier(tmp_path):
    from aei_batch.models.tabular import SklearnClassifier

    X, y, g = _groups_data(2)
    clf = build_models(["blend"], 0, X.shape[1])[0]
    clf.fit(X, y, groups=g, adapt_groups=g)
    assert clf.adapts
    keys = list(g.astype(str))
    before = predict_adapted(clf, X, keys, 10)
    clf.save(tmp_path / "blend.skops")
    loaded = SklearnClassifier.load("blend", tmp_path / "blend.skops")
    np.testing.assert_allclose(predict_adapted(loaded, X, keys, 10), before)
    assert not np.allclose(before, loaded.predict_proba8(X))


class _Model:
    """A loaded speaker-adaptive model's surface, around a fitted classifier (scoring/stage.py uses it)."""

    speaker_adaptive = True

    def __init__(self, clf):
        self.clf = clf

    adapts = property(lambda self: self.clf.adapts)

    def predict_normalised(self, Z, adapt=None, windows=None):
        return self.clf.predict_proba8(Z, adapt=adapt, windows=windows)

    def adaptation_stats(self, Z):
        return self.clf.adaptation_stats(Z)

    def adaptation_of(self, Z, groups, min_rows):
        return per_row_stats(self.clf.adaptation_stats, Z, groups, min_rows)


def test_driver_two_passes_equal_adapting_each_group_on_all_its_rows(monkeypatch):
    """The driver sees a run's pending rows chunk by chunk, speakers interleaved: the first pass sums each
    group's statistics, the second predicts. Same probabilities as adapting each whole group at once (what
    `evaluate` does), for groups over the minimum; a group under it is neither normalised nor adapted."""
    from aei_batch.models.stats import GlobalStats
    from aei_batch.records import COL
    from aei_batch.scoring.speaker import RunStats, SpeakerTransform, normalise
    from aei_batch.scoring.stage import (
        FEATURES_COLUMN,
        GROUP_COLUMN,
        PENDING_SCHEMA,
        Predictor,
        _predict_in_blocks,
        gather_adaptation,
    )

    monkeypatch.setattr("aei_batch.scoring.stage.PREDICT_BLOCK", 7)
    X, y, g = _groups_data(0)
    train = g < 9
    clf = build_models(["blend"], 0, X.shape[1])[0]
    clf.fit(X[train], y[train], groups=g[train], adapt_groups=g[train])
    assert clf.adapts
    rng = np.random.default_rng(0)
    raw = X[~train] * 3.0 + 1.0  # the pipeline gets raw features and normalises them per group
    keys = [f"spk{k}" for k in g[~train]]
    keys[:3] = ["lonely"] * 3  # under the minimum of 10: global statistics, no adaptation
    order = rng.permutation(len(raw))
    raw, keys = raw[order], [keys[i] for i in order]
    fallback = GlobalStats(mean=np.zeros(X.shape[1]), std=np.ones(X.shape[1]))
    pred = Predictor.__new__(Predictor)
    pred.model, pred.adaptive = _Model(clf), True
    pred.transform = SpeakerTransform(True, fallback, 10)
    stats = RunStats()
    for key in set(keys):
        stats.add_many(key, raw[[i for i, k in enumerate(keys) if k == key]])
    table = pa.Table.from_pylist(
        [
            {**dict.fromkeys(PENDING_SCHEMA.names), COL.uri: f"/f{i}", GROUP_COLUMN: k, FEATURES_COLUMN: x}
            for i, (k, x) in enumerate(zip(keys, raw.astype(np.float32), strict=True))
        ],
        schema=PENDING_SCHEMA,
    )
    chunks = [table.slice(i, 25) for i in range(0, table.num_rows, 25)]
    acc = gather_adaptation(chunks, stats, pred)
    assert set(acc) == {k for k in keys if k != "lonely"}
    group_stats = [stats.get(k) for k in keys]
    got = _predict_in_blocks(pred, raw.astype(np.float32), group_stats, [acc.get(k) for k in keys])
    Z, _ = normalise(raw.astype(np.float32), keys, fallback, 10)
    want = predict_adapted(clf, Z, keys, 10)
    np.testing.assert_allclose(got, want, atol=1e-6)
    lonely = np.array([k == "lonely" for k in keys])
    np.testing.assert_allclose(got[lonely], clf.predict_proba8(Z[lonely]), atol=1e-6)
    assert not np.allclose(got[~lonely], clf.predict_proba8(Z[~lonely]), atol=1e-3)


def test_adapt_list_of_the_wrong_length_fails():
    X, y, g = _groups_data(4)
    m = WeightedBlend(candidates=CANDS).fit(X, y, groups=g, adapt_groups=g)
    assert m.adapts
    with pytest.raises(ValueError, match="one entry per row"):
        m.decision_function(X, adapt=[None])
