"""Path attribution: contributions that add up to the raw score, equal to TreeSHAP where the two must agree."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from tiercast.training.attribution import PathAttribution


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


def _walk_matches_lightgbm(booster: lgb.Booster, X: np.ndarray) -> None:
    score, contributions = PathAttribution([booster], [1.0], X.shape[1]).explain(X)
    raw = booster.predict(X, raw_score=True)
    assert np.allclose(score[:, 0], raw, rtol=0, atol=1e-12), "the walk left LightGBM's path for some row"
    assert np.allclose(contributions.sum(axis=1) + PathAttribution([booster], [1.0], X.shape[1]).bias[0], raw,
                       rtol=0, atol=1e-10)


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_the_walk_follows_lightgbm_on_missing_zero_and_tiny_values(zero_as_missing):
    # Feature 0 has missing values in training (splits learn where they go), feature 1 has none (LightGBM
    # reads a missing value there as 0), feature 2 is often exactly 0 (zero as missing, when asked).
    rng = np.random.default_rng(7)
    n = 3000
    X = rng.normal(size=(n, 3))
    X[rng.random(n) < 0.2, 0] = np.nan
    X[rng.random(n) < 0.3, 2] = 0.0
    y = np.nan_to_num(X[:, 0], nan=1.5) + (X[:, 1] > 0.3) - 2 * (X[:, 2] == 0) + X[:, 2] + rng.normal(0, 0.2, n)
    params = {"objective": "regression", "num_leaves": 15, "verbosity": -1, "seed": 1,
              "zero_as_missing": zero_as_missing, "min_data_in_leaf": 5}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=40)
    rules = {node["missing_type"] for tree in booster.dump_model()["tree_info"]
             for node in _splits(tree["tree_structure"])}
    assert rules >= ({"Zero"} if zero_as_missing else {"NaN", "None"})  # the cases under test occur
    probe = rng.normal(size=(400, 3))
    probe[rng.random(400) < 0.25] = np.nan
    probe[rng.random(400) < 0.25, 2] = 0.0
    probe[:50, 1] = 1e-40  # below LightGBM's zero threshold: read as 0
    probe[50:100, 2] = -0.0
    _walk_matches_lightgbm(booster, probe)


def test_the_walk_follows_lightgbm_on_categorical_splits():
    rng = np.random.default_rng(11)
    n = 4000
    level = rng.integers(0, 12, n).astype(np.float64)
    level[rng.random(n) < 0.1] = np.nan
    X = np.column_stack([level, rng.normal(size=n)])
    effect = np.where(np.isin(level, [1, 4, 7, 8]), 2.0, -1.0)
    y = effect + X[:, 1] + rng.normal(0, 0.2, n)
    params = {"objective": "regression", "num_leaves": 15, "verbosity": -1, "seed": 3, "min_data_per_group": 5,
              "cat_smooth": 1.0}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[0]), num_boost_round=40)
    assert any(node["decision_type"] == "==" for tree in booster.dump_model()["tree_info"]
               for node in _splits(tree["tree_structure"]))
    # Known levels, missing, negative, unseen and non-integer values.
    levels = np.concatenate([np.arange(12.0), [np.nan, -1.0, -0.5, 12.0, 40.0, 3.7, 0.2, 1e9, 2.0**31 + 4,
                                               1e300, -1e300, np.inf, -np.inf]])
    probe = np.column_stack([np.repeat(levels, 20), rng.normal(size=20 * len(levels))])
    _walk_matches_lightgbm(booster, probe)


def _splits(node: dict) -> list[dict]:
    if "split_feature" not in node:
        return []
    return [node] + _splits(node["left_child"]) + _splits(node["right_child"])


def test_rows_of_the_wrong_width_are_refused():
    fitted, X = boosters(5, max_depth=-1)
    with pytest.raises(ValueError, match="5 features"):
        PathAttribution(fitted, [0.5, 0.5], X.shape[1]).explain(X[:, :4])
