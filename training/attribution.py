"""Per-feature contributions of LightGBM ensembles along each prediction's own decision path.

Why not LightGBM's exact TreeSHAP (``pred_contrib``): it costs O(leaves x depth^2) per tree and row
(about 6 microseconds per tree and row here, a third of a second for a 500-customer request), which is
most of what a prediction request would cost. Path attribution (Saabas; the ``treeinterpreter`` method)
credits every split on the row's path with the change in node value it causes. Per tree, a leaf's
credits are fixed, so they are tabulated once; a row then costs one leaf lookup per tree (LightGBM's
``pred_leaf``, as cheap as predicting) and a sum. Like SHAP, the contributions add up exactly to the raw
score less a constant (the trees' root values); they share credit between interacting features
differently, which matters little for naming a customer's two or three main drivers
(``benchmarks/bench_service.py`` measures how often the top driver agrees with TreeSHAP's).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
from scipy.sparse import csr_matrix


class PathAttribution:
    """Contributions of ``sum_k weights[k] * raw_score(boosters[k])`` to each of ``n_features`` inputs.

    Each booster is read up to its ``best_iteration``. ``bias`` is the part no feature explains (the
    weighted root values): the raw score is ``bias`` plus the row's contributions, so one pass gives both.
    """

    def __init__(self, boosters: Sequence[lgb.Booster], weights: Sequence[float], n_features: int):
        self.boosters = list(boosters)
        self.weights = [float(w) for w in weights]
        self.n_features = n_features
        starts, features, deltas = [0], [], []
        self.bias = 0.0
        self.leaf_offsets_: list[np.ndarray] = []  # per booster: the first global leaf id of each tree
        for booster, weight in zip(self.boosters, self.weights, strict=True):
            offsets = []
            for tree in booster.dump_model(num_iteration=self._iterations(booster))["tree_info"]:
                offsets.append(len(starts) - 1)
                root = tree["tree_structure"]
                self.bias += weight * root.get("internal_value", root.get("leaf_value", 0.0))
                for path in _leaf_paths(root, tree["num_leaves"]):
                    features += [f for f, _ in path]
                    deltas += [weight * d for _, d in path]
                    starts.append(starts[-1] + len(path))
            self.leaf_offsets_.append(np.asarray(offsets, dtype=np.int64))
        # Row g: the credits of global leaf g to each feature; dense for a fast product with the leaves
        # reached (8 bytes x leaves x features: 1 MB for 3,000 leaves and 42 features).
        self.table_ = csr_matrix((np.asarray(deltas, dtype=np.float64), np.asarray(features, dtype=np.int64),
                                  np.asarray(starts, dtype=np.int64)), shape=(len(starts) - 1, n_features)).toarray()

    @staticmethod
    def _iterations(booster: lgb.Booster) -> int | None:
        return booster.best_iteration if booster.best_iteration > 0 else None

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The weighted raw score of each row and its (rows, n_features) contributions (raw scale)."""
        n = len(X)
        leaves = np.hstack([booster.predict(X, pred_leaf=True, num_iteration=self._iterations(booster),
                                            num_threads=1).reshape(n, -1).astype(np.int64) + offsets
                            for booster, offsets in zip(self.boosters, self.leaf_offsets_, strict=True)])
        trees = leaves.shape[1]
        # Which leaf each row reached in each tree, as a sparse 0/1 (rows, leaves) matrix: its product with
        # the table sums the credits of the leaves reached (a few times faster than gathering them).
        reached = csr_matrix((np.ones(n * trees), leaves.ravel(), np.arange(0, n * trees + 1, trees)),
                             shape=(n, len(self.table_)))
        contributions = np.asarray(reached @ self.table_)
        return self.bias + contributions.sum(axis=1), contributions


def _leaf_paths(root: dict, num_leaves: int) -> list[list[tuple[int, float]]]:
    """For each leaf (by leaf_index) the (split feature, value change) of every step from the root."""
    paths: list[list[tuple[int, float]]] = [[] for _ in range(num_leaves)]
    stack: list[tuple[dict, list[tuple[int, float]]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if "split_feature" not in node:
            paths[node.get("leaf_index", 0)] = path
            continue
        value = node["internal_value"]
        for child in (node["left_child"], node["right_child"]):
            child_value = child["leaf_value"] if "split_feature" not in child else child["internal_value"]
            stack.append((child, path + [(node["split_feature"], child_value - value)]))
    return paths
