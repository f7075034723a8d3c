"""Per-feature contributions: of LightGBM ensembles along each prediction's own decision path, and exact
Shapley values over a few inputs from the outcomes of all their coalitions.

Why not LightGBM's exact TreeSHAP (``pred_contrib``): it costs O(leaves x depth^2) per tree and row, which
would be most of what a prediction request costs. Path attribution (Saabas; the ``treeinterpreter`` method)
credits every split on the row's path with the change in node value it causes. Like SHAP, the
contributions add up exactly to the raw score less a constant (the trees' root values); they share credit
between interacting features differently, which matters little for naming a customer's two or three main
drivers (``benchmarks/bench_service.py`` measures how often the top driver agrees with TreeSHAP's, and what
each costs).

The trees are walked here, not by LightGBM: their nodes are copied into flat arrays once, and a compiled
loop (numba) takes each row down every tree, adding each split's credit on the way and the leaf's value
at the end: one pass for the score and the contributions together. The walk repeats LightGBM's decision
rules (missing values, zero as missing, categorical splits); the tests hold its scores to LightGBM's own
predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from math import factorial

import lightgbm as lgb
import numpy as np

from tiercast.features.compiled import compiled
from tiercast.training.parallel import by_halves

# How a split reads its feature (``_Nodes.rule``): the missing-value handling of a numerical split, plus
# DEFAULT_LEFT where missing values go left; or a categorical split.
MISSING_NONE, MISSING_ZERO, MISSING_NAN, CATEGORICAL = 0, 1, 2, 3
MISSING_MASK, DEFAULT_LEFT = 3, 4
_MISSING_TYPES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold: inputs this close to 0 are 0
INT32_END = 2.0**31  # categorical levels are C ints: larger values are no level


@dataclass(frozen=True)
class _Nodes:
    """The split nodes of an ensemble's trees, flat. A child >= 0 is a split node, a child < 0 is leaf ~child.

    ``root``/``part`` per tree; per split node: ``feature``, ``threshold``, ``rule``, the children and the
    (weighted) change in value going to each; categorical splits send left the levels in
    ``levels[level_start:level_end]``; ``leaf_value`` per leaf, weighted."""

    root: np.ndarray
    part: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    rule: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_credit: np.ndarray
    right_credit: np.ndarray
    level_start: np.ndarray
    level_end: np.ndarray
    levels: np.ndarray
    leaf_value: np.ndarray

    @classmethod
    def of(cls, trees: Sequence[tuple[dict, float, int]]) -> "_Nodes":
        """Nodes of ``trees``: (LightGBM ``dump_model`` tree, weight, part) each, in order."""
        columns: dict[str, list] = {name: [] for name in cls.__dataclass_fields__}

        def add(node: dict, weight: float) -> int:
            if "split_feature" not in node:
                columns["leaf_value"].append(weight * node["leaf_value"])
                return ~(len(columns["leaf_value"]) - 1)
            me = len(columns["feature"])
            columns["feature"].append(node["split_feature"])
            if node["decision_type"] == "==":  # threshold "3||7||9": the levels that go left
                columns["threshold"].append(0.0)
                columns["rule"].append(CATEGORICAL)
                columns["level_start"].append(len(columns["levels"]))
                columns["levels"].extend(int(level) for level in str(node["threshold"]).split("||"))
            else:
                columns["threshold"].append(float(node["threshold"]))
                columns["rule"].append(_MISSING_TYPES[node["missing_type"]]
                                       | (DEFAULT_LEFT if node["default_left"] else 0))
                columns["level_start"].append(len(columns["levels"]))
            columns["level_end"].append(len(columns["levels"]))
            for side in ("left", "right"):
                child = node[f"{side}_child"]
                child_value = child["internal_value"] if "split_feature" in child else child["leaf_value"]
                columns[f"{side}_credit"].append(weight * (child_value - node["internal_value"]))
                columns[side].append(None)  # filled once the child's own index is known
            columns["left"][me] = add(node["left_child"], weight)
            columns["right"][me] = add(node["right_child"], weight)
            return me

        for tree, weight, part in trees:
            columns["root"].append(add(tree["tree_structure"], weight))
            columns["part"].append(part)
        floats = {"threshold", "left_credit", "right_credit", "leaf_value"}
        return cls(**{name: np.asarray(values, dtype=np.float64 if name in floats else np.int64)
                      for name, values in columns.items()})


@compiled
def _walk(X, n_parts, root, part, feature, threshold, rule, left, right, left_credit, right_credit,
          level_start, level_end, levels, leaf_value):
    """(rows, features + parts): each row's credits per feature, then its leaf values per part. Each row is added
    up on its own, tree after tree, so it gets exactly the same numbers in any batch. All rows go through one
    tree before the next, so that a tree's nodes stay in the nearest cache."""
    n_features = X.shape[1]
    out = np.zeros((X.shape[0], n_features + n_parts))
    for t in range(root.shape[0]):
        for i in range(X.shape[0]):
            node = root[t]
            while node >= 0:
                f = feature[node]
                x = X[i, f]
                how = rule[node]
                if how == CATEGORICAL:  # as LightGBM: missing, or not an int32 >= 0 once truncated, goes right
                    go_left = False
                    if -1.0 < x < INT32_END:  # (False for NaN)
                        level = int(x)
                        for j in range(level_start[node], level_end[node]):
                            if levels[j] == level:
                                go_left = True
                                break
                else:
                    missing = how & MISSING_MASK
                    if np.isnan(x) and missing != MISSING_NAN:
                        x = 0.0
                    if (missing == MISSING_ZERO and -ZERO_THRESHOLD <= x <= ZERO_THRESHOLD) or \
                            (missing == MISSING_NAN and np.isnan(x)):
                        go_left = (how & DEFAULT_LEFT) != 0
                    else:
                        go_left = x <= threshold[node]
                if go_left:
                    out[i, f] += left_credit[node]
                    node = left[node]
                else:
                    out[i, f] += right_credit[node]
                    node = right[node]
            out[i, n_features + part[t]] += leaf_value[~node]
    return out


@cache
def _shapley_weights(n_inputs: int) -> np.ndarray:
    """(coalitions, inputs) weights W: input i's Shapley value is sum_k W[k, i] x (outcome of coalition k),
    coalition k holding input j when bit j of k is set."""
    weights = np.zeros((2 ** n_inputs, n_inputs))
    for i in range(n_inputs):
        others = [j for j in range(n_inputs) if j != i]
        for size in range(n_inputs):
            weight = factorial(size) * factorial(n_inputs - size - 1) / factorial(n_inputs)
            for subset in combinations(others, size):
                without = sum(1 << j for j in subset)
                weights[without | (1 << i), i] += weight
                weights[without, i] -= weight
    return weights


def coalition_shapley(outcome: np.ndarray) -> np.ndarray:
    """Exact Shapley values (rows, inputs) from the outcome of every coalition of the inputs, ``outcome``
    of shape (2 ** inputs, rows), coalition k holding input i when bit i of k is set.

    Added coalition by coalition, in a fixed order: a row gets exactly the same values alone as in any batch
    (a matrix product may order its sums by the arrays' shape)."""
    n_coalitions, n = outcome.shape
    weights = _shapley_weights(n_coalitions.bit_length() - 1)
    values = np.zeros((n, weights.shape[1]))
    for k in range(n_coalitions):
        values += outcome[k][:, None] * weights[k]
    return values


class PathAttribution:
    """Contributions of ``sum_k weights[k] * raw_score(boosters[k])`` to each of ``n_features`` inputs.

    Each booster is read up to its ``best_iteration``. Booster k adds to output part ``parts[k]`` (default:
    one part), so a model of several parts (a hurdle model's purchase and spend boosters) is explained in one
    pass: ``explain`` gives each part's raw score and the contributions of all parts together. ``bias`` (per
    part) is what no feature explains (the weighted root values): the parts' raw scores add up to
    ``bias.sum()`` plus the row's contributions.
    """

    def __init__(self, boosters: Sequence[lgb.Booster], weights: Sequence[float], n_features: int,
                 parts: Sequence[int] | None = None):
        self.boosters = list(boosters)
        self.weights = [float(w) for w in weights]
        self.n_features = n_features
        self.parts = [0] * len(self.boosters) if parts is None else [int(p) for p in parts]
        self.bias = np.zeros(max(self.parts) + 1)
        trees = []
        for booster, weight, part in zip(self.boosters, self.weights, self.parts, strict=True):
            iterations = booster.best_iteration if booster.best_iteration > 0 else None
            for tree in booster.dump_model(num_iteration=iterations)["tree_info"]:
                root = tree["tree_structure"]
                self.bias[part] += weight * root.get("internal_value", root.get("leaf_value", 0.0))
                trees.append((tree, weight, part))
        self.nodes_ = _Nodes.of(trees)
        self.explain(np.empty((0, n_features)))  # compiles the walk (or loads it from numba's cache) now

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's weighted raw score per part (rows, parts) and its contributions (rows, n_features)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got an array of shape {X.shape}")
        return by_halves(self._explain, X)  # each row is explained on its own: the same numbers in any batch

    def _explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nodes = self.nodes_
        summed = _walk(X, len(self.bias), nodes.root, nodes.part, nodes.feature, nodes.threshold, nodes.rule,
                       nodes.left, nodes.right, nodes.left_credit, nodes.right_credit, nodes.level_start,
                       nodes.level_end, nodes.levels, nodes.leaf_value)
        return summed[:, self.n_features:], summed[:, :self.n_features]
