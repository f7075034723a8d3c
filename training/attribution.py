"""Per-feature contributions of LightGBM ensembles along each prediction's own decision path.

Why not LightGBM's exact TreeSHAP (``pred_contrib``): it costs O(leaves x depth^2) per tree and row
(about 6 microseconds per tree and row here, a third of a second for a 500-customer request), which is
most of what a prediction request would cost. Path attribution (Saabas; the ``treeinterpreter`` method)
credits every split on the row's path with the change in node value it causes. Like SHAP, the
contributions add up exactly to the raw score less a constant (the trees' root values); they share credit
between interacting features differently, which matters little for naming a customer's two or three main
drivers (``benchmarks/bench_service.py`` measures how often the top driver agrees with TreeSHAP's).

The trees are walked here, not by LightGBM: their nodes are copied into flat arrays once, and a compiled
loop (numba) takes each row down every tree, adding each split's credit on the way and the leaf's value
at the end. That is one pass for the score and the contributions together, at about 55 ns per tree and
row, where LightGBM's leaf search alone took 70 ns plus 0.1 ms per call, and summing the leaves' credits
as many again. The walk repeats LightGBM's decision rules (missing values, zero as missing, categorical
splits); the tests hold its scores to LightGBM's own predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numba import njit

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

    ``root``/``part``/``block`` per tree; per split node: ``feature``, ``threshold``, ``rule``, the children and the
    (weighted) change in value going to each; categorical splits send left the levels in
    ``levels[level_start:level_end]``; ``leaf_value`` per leaf, weighted."""

    root: np.ndarray
    part: np.ndarray
    block: np.ndarray
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
    def of(cls, trees: Sequence[tuple[dict, float, int, int]]) -> "_Nodes":
        """Nodes of ``trees``: (LightGBM ``dump_model`` tree, weight, part, block) each, in order."""
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

        for tree, weight, part, block in trees:
            columns["root"].append(add(tree["tree_structure"], weight))
            columns["part"].append(part)
            columns["block"].append(block)
        floats = {"threshold", "left_credit", "right_credit", "leaf_value"}
        return cls(**{name: np.asarray(values, dtype=np.float64 if name in floats else np.int64)
                      for name, values in columns.items()})


def _compiled(function):
    """``function`` compiled by numba, without the GIL, and cached on disk. Where numba finds no writable
    cache folder (neither beside the source nor in the user's cache) it refuses caching at import time;
    a read-only install then compiles once per process instead (about a second)."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:
        return njit(nogil=True)(function)


@_compiled
def _walk(X, n_blocks, n_parts, root, part, block, feature, threshold, rule, left, right, left_credit, right_credit,
          level_start, level_end, levels, leaf_value):
    """(rows, blocks x features + parts): each row's credits per feature of each block, then its leaf values per
    part; a tree's credits go to the features of its own block. Each row is
    added up on its own, tree after tree, so it gets exactly the same numbers in any batch. Tree by tree,
    all rows through one tree before the next: a tree's nodes stay in the nearest cache (value model, 500
    customers: 0.85x the time of row by row)."""
    n_features = X.shape[1]
    n_credits = n_blocks * n_features
    out = np.zeros((X.shape[0], n_credits + n_parts))
    for t in range(root.shape[0]):
        credited = block[t] * n_features
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
                    out[i, credited + f] += left_credit[node]
                    node = left[node]
                else:
                    out[i, credited + f] += right_credit[node]
                    node = right[node]
            out[i, n_credits + part[t]] += leaf_value[~node]
    return out


@_compiled
def ordered_products(values, weights):
    """(n, m) sums over k of ``values[k, i] * weights[k, j]``, added k = 0, 1, ... in that order, so that column i
    gets exactly the same numbers in any batch (a matrix product may order its sums by the arrays' shape). A
    tenth of the time of numpy's fixed-order way, a cumulative sum of the (k, n, m) products (500 rows, 16 k)."""
    out = np.zeros((values.shape[1], weights.shape[1]))
    for k in range(values.shape[0]):
        for i in range(values.shape[1]):
            v = values[k, i]
            for j in range(weights.shape[1]):
                out[i, j] += v * weights[k, j]
    return out


class PathAttribution:
    """Contributions of ``sum_k weights[k] * raw_score(boosters[k])`` to each of ``n_features`` inputs.

    Each booster is read up to its ``best_iteration``. Booster k adds to output part ``parts[k]`` (default:
    one part), so a model of several parts (a hurdle model's purchase and spend boosters) is explained in one
    pass: ``explain`` gives each part's raw score and the contributions of all parts together. ``bias`` (per
    part) is what no feature explains (the weighted root values): the parts' raw scores add up to
    ``bias.sum()`` plus the row's contributions.

    Booster k's contributions go to block ``blocks[k]`` (default: one block), so that several models reading the
    same inputs are explained in one pass too: block b's contributions are columns ``b * n_features`` to
    ``(b + 1) * n_features`` of ``explain``'s contributions, exactly what that block's boosters alone would give.
    """

    def __init__(self, boosters: Sequence[lgb.Booster], weights: Sequence[float], n_features: int,
                 parts: Sequence[int] | None = None, blocks: Sequence[int] | None = None):
        self.boosters = list(boosters)
        self.weights = [float(w) for w in weights]
        self.n_features = n_features
        self.parts = [0] * len(self.boosters) if parts is None else [int(p) for p in parts]
        self.blocks = [0] * len(self.boosters) if blocks is None else [int(b) for b in blocks]
        self.n_blocks = max(self.blocks) + 1
        self.bias = np.zeros(max(self.parts) + 1)
        trees = []
        for booster, weight, part, block in zip(self.boosters, self.weights, self.parts, self.blocks, strict=True):
            iterations = booster.best_iteration if booster.best_iteration > 0 else None
            for tree in booster.dump_model(num_iteration=iterations)["tree_info"]:
                root = tree["tree_structure"]
                self.bias[part] += weight * root.get("internal_value", root.get("leaf_value", 0.0))
                trees.append((tree, weight, part, block))
        self.nodes_ = _Nodes.of(trees)
        # Compiles the walk and the ordered products the models add to it (or loads them from numba's cache) now,
        # rather than in a first request.
        self._explain(np.empty((0, n_features)))
        ordered_products(np.empty((0, 0)), np.empty((0, 0)))

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's weighted raw score per part (rows, parts) and its contributions (rows, blocks x n_features)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got an array of shape {X.shape}")
        return by_halves(self._explain, X)  # each row is explained on its own

    def _explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nodes = self.nodes_
        summed = _walk(X, self.n_blocks, len(self.bias), nodes.root, nodes.part, nodes.block, nodes.feature,
                       nodes.threshold, nodes.rule, nodes.left, nodes.right, nodes.left_credit, nodes.right_credit,
                       nodes.level_start, nodes.level_end, nodes.levels, nodes.leaf_value)
        credits = self.n_blocks * self.n_features
        return summed[:, credits:], summed[:, :credits]
