"""The `blend` model: members, weights and temperature chosen inside its own training data."""

import numpy as np
import pytest

from aei_batch.models.ensemble import WeightedBlend, build_models
from aei_batch.models.tabular import SklearnClassifier


def _data(seed: int = 0, n_spk: int = 8, per: int = 24, dim: int = 12):
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(8), n_spk * per // 8)
    groups = np.repeat(np.arange(n_spk), per)
    X = rng.normal(size=(len(y), dim)) + np.eye(8, dim)[y] * 3.0 + 0.5 * rng.normal(size=(n_spk, dim))[groups]
    return X, y, groups


def test_fit_selects_weights_and_a_temperature_and_beats_chance():
    X, y, g = _data()
    m = WeightedBlend(candidates=(("lda", "lda", 0), ("lda6", "lda", 6), ("lr", "logreg", 0)), rounds=4)
    m.fit(X[g < 6], y[g < 6], groups=g[g < 6])
    assert abs(sum(m.weights_) - 1) < 1e-9 and 0 < m.temperature_ < 40
    assert set(m.inner_scores_) == {"lda", "lda6", "lr", "lda+lda6", "lda+lr", "lda6+lr"}
    p = m.predict_proba(X[g >= 6])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(1) == y[g >= 6]).mean() > 0.5  # chance is 0.125


def test_inner_splits_never_share_a_speaker(monkeypatch):
    from sklearn.model_selection import GroupKFold

    seen = []
    real = GroupKFold.split

    def spy(self, X, y=None, groups=None):
        for tr, te in real(self, X, y, groups):
            seen.append(set(groups[tr]) & set(groups[te]))
            yield tr, te

    monkeypatch.setattr(GroupKFold, "split", spy)
    X, y, g = _data(1)
    WeightedBlend(candidates=(("lda", "lda", 0),), rounds=1).fit(X, y, groups=g)
    assert len(seen) == 3 + 8 and all(not s for s in seen)  # the choice's 3 folds, the temperature's 8


def test_deterministic_and_round_trips_through_skops(tmp_path):
    X, y, g = _data(2)
    a, b = (build_models(["blend"], 0, X.shape[1])[0] for _ in range(2))
    a.fit(X, y, groups=g)
    b.fit(X, y, groups=g)
    np.testing.assert_array_equal(a.predict_proba8(X), b.predict_proba8(X))
    path = tmp_path / "blend.skops"
    a.save(path)
    loaded = SklearnClassifier.load("blend", path)
    np.testing.assert_allclose(loaded.predict_proba8(X), a.predict_proba8(X))


def test_without_groups_falls_back_to_stratified_folds():
    X, y, _ = _data(3)
    m = WeightedBlend(candidates=(("lda", "lda", 0),), rounds=1).fit(X, y)
    assert m.members_ and m.predict(X).shape == y.shape


def test_unknown_family_fails():
    with pytest.raises(ValueError, match="unknown blend family"):
        WeightedBlend(candidates=(("x", "nope", 0),)).fit(*_data()[:2])


def test_accuracy_selection_without_combos_keeps_the_best_inner_candidate_alone():
    X, y, g = _data(4)
    m = WeightedBlend(
        candidates=(("lda", "lda", 0), ("lda2", "lda", 2), ("lr", "logreg", 0)), select="accuracy", combos=()
    )
    m.fit(X, y, groups=g)
    best = max(m.inner_scores_, key=m.inner_scores_.get)
    assert set(m.inner_scores_) == {"lda", "lda2", "lr"}
    assert [name for name, _, _ in m.members_] == [best] and m.weights_ == [1.0]


def test_accuracy_selection_scores_every_pair_and_keeps_the_best_option():
    """By default the pairs of candidates (equal-weight soft votes) compete with the single candidates on
    the same out-of-fold scores; here the pair of full and 2-column LDA is the best inner option."""
    X, y, g = _data(2)
    cands = (("lda", "lda", 0), ("lda2", "lda", 2), ("lr", "logreg", 0))
    m = WeightedBlend(candidates=cands).fit(X, y, groups=g)
    assert set(m.inner_scores_) == {"lda", "lda2", "lr", "lda+lda2", "lda+lr", "lda2+lr"}
    best = max(m.inner_scores_.values())
    assert m.inner_scores_["lda+lda2"] == best > max(m.inner_scores_[c] for c in ("lda", "lda2", "lr"))
    assert [name for name, _, _ in m.members_] == ["lda", "lda2"] and m.weights_ == [0.5, 0.5]
    # the pair's decision is the mean of its members' log-probabilities
    z = sum(0.5 * np.log(np.clip(e.predict_proba(X[:, :n] if n else X), 1e-12, 1)) for _, n, e in m.members_)
    np.testing.assert_allclose(m.decision_function(X), z)


def test_combos_naming_no_candidate_fail_and_combos_of_unused_candidates_are_skipped():
    X, y, g = _data(3)
    with pytest.raises(ValueError, match="names no candidate"):
        WeightedBlend(candidates=(("lda", "lda", 0),), combos=(("lda", "lr"),)).fit(X, y, groups=g)
    wide = (("lda", "lda", 0), ("lda_wide", "lda", 500), ("lr", "logreg", 0))  # X has 12 columns: no lda_wide
    m = WeightedBlend(candidates=wide).fit(X, y, groups=g)
    assert set(m.inner_scores_) == {"lda", "lr", "lda+lr"}


def test_a_blend_saved_before_combos_still_predicts_and_clones():
    from sklearn.base import clone

    X, y, g = _data(5)
    m = WeightedBlend(candidates=(("lda", "lda", 0), ("lr", "logreg", 0))).fit(X, y, groups=g)
    p = m.predict_proba(X)
    del m.combos  # what skops restores from a blend saved before the attribute existed
    np.testing.assert_allclose(m.predict_proba(X), p)
    assert clone(m).combos == ()


def test_temperature_is_fitted_on_the_calibration_rows_only():
    """Noisy augmented copies make out-of-fold scores less certain; fitted on every row, the temperature
    softens the clean files' predictions too. Fitted on the original rows only, it lands nearer the
    temperature that is best for unseen clean files (same members: the decisions do not change)."""
    from aei_batch.models.ensemble import _fit_temperature

    X, y, g = _data(5, n_spk=10, per=32)
    rng = np.random.default_rng(7)
    train, test = g < 7, g >= 7
    noisy = X[train] + rng.normal(scale=4.0, size=X[train].shape)  # a heavily degraded copy of each row
    Xa = np.concatenate([X[train], noisy])
    ya, ga = np.tile(y[train], 2), np.tile(g[train], 2)
    originals = np.arange(len(Xa)) < train.sum()
    cands = (("lda", "lda", 0),)
    masked = WeightedBlend(candidates=cands).fit(Xa, ya, groups=ga, calibration_rows=originals)
    every = WeightedBlend(candidates=cands).fit(Xa, ya, groups=ga)
    np.testing.assert_array_equal(masked.predict(X[test]), every.predict(X[test]))
    best = _fit_temperature(masked.decision_function(X[test]), np.searchsorted(masked.classes_, y[test]))
    assert masked.temperature_ < every.temperature_
    assert abs(np.log(masked.temperature_ / best)) < abs(np.log(every.temperature_ / best))


def test_temperature_is_fitted_on_models_of_nearly_the_final_size():
    """The 3 inner folds' models see two thirds of the speakers and are less sure than the final model, so a
    temperature fitted on their scores is too high. With `calibration_folds` (the default, 8) it is fitted on
    8-fold scores of the chosen blend: lower, and nearer the one that is best for unseen speakers."""
    from aei_batch.models.ensemble import _fit_temperature

    X, y, g = _data(3, n_spk=24, per=16, dim=40)
    X = X / 2 + np.random.default_rng(3).normal(size=(24, 40))[g] / 2  # weaker classes, stronger speakers
    train, test = g < 16, g >= 16
    cands = (("lda", "lda", 0),)
    three = WeightedBlend(candidates=cands, calibration_folds=0).fit(X[train], y[train], groups=g[train])
    eight = WeightedBlend(candidates=cands).fit(X[train], y[train], groups=g[train])
    np.testing.assert_array_equal(three.predict(X[test]), eight.predict(X[test]))  # same members
    best = _fit_temperature(eight.decision_function(X[test]), np.searchsorted(eight.classes_, y[test]))
    assert eight.calibration_folds == 8 and eight.temperature_ < three.temperature_
    assert abs(np.log(eight.temperature_ / best)) < abs(np.log(three.temperature_ / best))


def test_calibration_rows_reach_the_blend_through_the_classifier_and_are_checked():
    X, y, g = _data(6)
    clf = build_models(["blend"], 0, X.shape[1])[0]
    clf.fit(X, y, groups=g, calibration_rows=np.arange(len(X)) % 2 == 0)
    assert clf.estimator.temperature_ > 0
    with pytest.raises(ValueError, match="one flag per row"):
        WeightedBlend(candidates=(("lda", "lda", 0),)).fit(X, y, groups=g, calibration_rows=[True])


def _windows(X, y, g, rng, scale=2.5):
    """Windows of the speakers' recordings: the same classes, blurred (a window holds part of a clip)."""
    return X + rng.normal(scale=scale, size=X.shape), y, g


def test_window_temperature_is_fitted_out_of_fold_on_the_window_rows():
    """Window rows (not training rows) get their own temperature, fitted on the calibration folds' scores
    of each window by models that never saw its speaker: blurred windows need a softer one than the
    files, and it lands near the one that is best for unseen speakers' windows."""
    from aei_batch.models.ensemble import WindowRows, _fit_temperature

    X, y, g = _data(4, n_spk=12, per=24)
    rng = np.random.default_rng(11)
    train, test = g < 9, g >= 9
    Xw, yw, gw = _windows(X, y, g, rng)
    cands = (("lda", "lda", 0),)
    plain = WeightedBlend(candidates=cands).fit(X[train], y[train], groups=g[train])
    m = WeightedBlend(candidates=cands).fit(
        X[train], y[train], groups=g[train], window_rows=WindowRows(Xw[train], yw[train], gw[train])
    )
    assert plain.window_temperature_ is None
    assert m.temperature_ == pytest.approx(plain.temperature_)  # the files' temperature does not move
    np.testing.assert_array_equal(m.predict(X[test]), plain.predict(X[test]))  # nor the decisions
    assert m.window_temperature_ > 1.2 * m.temperature_
    best = _fit_temperature(m.decision_function(Xw[test]), np.searchsorted(m.classes_, yw[test]))
    assert abs(np.log(m.window_temperature_ / best)) < abs(np.log(m.temperature_ / best))
    # rows flagged as windows take the window temperature, the others the file one
    flags = np.arange(test.sum()) % 2 == 0
    p = m.predict_proba(X[test], windows=flags)
    np.testing.assert_allclose(p[~flags], m.predict_proba(X[test])[~flags])
    assert (p[flags].max(1) < m.predict_proba(X[test])[flags].max(1)).all()
    np.testing.assert_array_equal(p.argmax(1), m.predict_proba(X[test]).argmax(1))
    with pytest.raises(ValueError, match="one flag per row"):
        m.predict_proba(X[test], windows=[True])


def test_window_rows_of_unknown_speakers_leave_no_window_temperature_and_few_speakers_leave_one_out(tmp_path):
    from aei_batch.models.ensemble import WindowRows

    X, y, g = _data(8, n_spk=8, per=16)
    rng = np.random.default_rng(2)
    Xw, yw, gw = _windows(X, y, g, rng)
    cands = (("lda", "lda", 0),)
    strangers = WindowRows(Xw, yw, gw + 100)  # speakers the fit has never heard of: no out-of-fold score
    assert (
        WeightedBlend(candidates=cands).fit(X, y, groups=g, window_rows=strangers).window_temperature_ is None
    )
    few = WeightedBlend(candidates=cands).fit(
        X[g < 6], y[g < 6], groups=g[g < 6], window_rows=WindowRows(Xw[g < 6], yw[g < 6], gw[g < 6])
    )
    plain = WeightedBlend(candidates=cands).fit(X[g < 6], y[g < 6], groups=g[g < 6])
    assert few.temperature_ == pytest.approx(plain.temperature_)  # 6 speakers: the inner folds' temperature
    assert few.window_temperature_ > few.temperature_  # and the windows' own, one speaker left out at a time
    # through the classifier and skops: the window temperature survives a save and load
    clf = build_models(["blend"], 0, X.shape[1])[0]
    clf.fit(X, y, groups=g, window_rows=WindowRows(Xw, yw, gw))
    assert clf.window_temperature is not None and clf.window_temperature > 0
    clf.save(tmp_path / "blend.skops")
    loaded = SklearnClassifier.load("blend", tmp_path / "blend.skops")
    assert loaded.window_temperature == pytest.approx(clf.window_temperature)
    flags = np.ones(len(X), dtype=bool)
    np.testing.assert_allclose(loaded.predict_proba8(X, windows=flags), clf.predict_proba8(X, windows=flags))
    assert not np.allclose(loaded.predict_proba8(X, windows=flags), loaded.predict_proba8(X))
