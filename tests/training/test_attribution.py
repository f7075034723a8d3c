"""Path attribution: contributions that add up to the raw score, equal to TreeSHAP where the two must agree."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from training.attribution import PathAttribution


def boosters(seed: int, max_depth: int, n: int = 2000, n_features: int = 5) -> tuple[list[lgb.Booster], np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    y = 2 * X[:, 0] - X[:, 1] * (X[:, 2] > 0) + rng.normal(0, 0.3, n)
    fitted = []
    for k in range(2):
        train = rng.random(n) < 0.7
        params = {"objective": "regression", "num_leaves": 15, "max_depth": max_depth, "verbosity": -1,
                  "seed": seed + k, "learning_rate": 0.1}
        booster = lgb.train(params, lgb.Dataset(X[train], y[train], init_score=np.full(train.sum(), 0.5)),
                            num_boost_round=200, valid_sets=[lgb.Dataset(X[~train], y[~train],
                                                                         init_score=np.full((~train).sum(), 0.5))],
                            callbacks=[lgb.early_stopping(10, verbose=False)])
        fitted.append(booster)
    return fitted, rng.normal(size=(300, n_features))


@pytest.mark.parametrize("seed", [0, 1])
def test_contributions_add_up_to_the_weighted_raw_score(seed):
    fitted, X = boosters(seed, max_depth=-1)
    weights = [0.3, 0.7]
    attribution = PathAttribution(fitted, weights, X.shape[1])
    raw = sum(w * b.predict(X, raw_score=True, num_iteration=b.best_iteration) for w, b in zip(weights, fitted))
    score, contributions = attribution.explain(X)
    assert contributions.shape == X.shape and score.shape == (len(X), 1)
    assert np.allclose(score[:, 0], raw, atol=1e-10)
    assert np.allclose(contributions.sum(axis=1) + attribution.bias.sum(), raw, atol=1e-10)
    # Feature 4 never matters in the data: it must get (almost) no credit next to feature 0.
    assert np.abs(contributions[:, 4]).mean() < 0.05 * np.abs(contributions[:, 0]).mean()


def test_parts_get_their_own_raw_scores_and_share_the_contributions():
    # A hurdle model's purchase and spend boosters explained in one pass: one score per part, one set of
    # contributions for both.
    (first, second), X = boosters(4, max_depth=-1)
    together = PathAttribution([first, second], [0.5, 2.0], X.shape[1], parts=[0, 1])
    score, contributions = together.explain(X)
    for part, (booster, weight) in enumerate(((first, 0.5), (second, 2.0))):
        alone = PathAttribution([booster], [weight], X.shape[1])
        assert np.allclose(score[:, part], alone.explain(X)[0][:, 0], atol=1e-10)
        assert together.bias[part] == pytest.approx(alone.bias[0])
    assert np.allclose(contributions, sum(PathAttribution([b], [w], X.shape[1]).explain(X)[1]
                                          for b, w in ((first, 0.5), (second, 2.0))), atol=1e-10)


def test_stumps_give_exactly_treeshap():
    # With one split per tree, a path credits one feature with the whole move: TreeSHAP's answer too.
    fitted, X = boosters(2, max_depth=1)
    attribution = PathAttribution(fitted, [0.5, 0.5], X.shape[1])
    shap = sum(0.5 * b.predict(X, pred_contrib=True, num_iteration=b.best_iteration)[:, :-1] for b in fitted)
    assert np.allclose(attribution.explain(X)[1], shap, atol=1e-10)


def test_one_row_is_explained_exactly_as_in_a_batch():
    fitted, X = boosters(3, max_depth=-1)
    attribution = PathAttribution(fitted, [0.5, 0.5], X.shape[1], parts=[0, 1])
    score, contributions = attribution.explain(X)
    for i in range(0, 300, 37):
        alone = attribution.explain(X[i:i + 1])
        assert np.array_equal(alone[0][0], score[i]) and np.array_equal(alone[1][0], contributions[i])
