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

The boosters' trees are copied into one booster that only finds leaves: one ``pred_leaf`` call per
request instead of one per booster (each call costs about 0.1 ms before any tree is read).
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
from scipy.sparse import csr_matrix

from training.parallel import by_halves


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
        starts, features, deltas = [0], [], []
        offsets = []  # per tree of all boosters in order: its first global leaf id
        for booster, weight, part in zip(self.boosters, self.weights, self.parts, strict=True):
            for tree in booster.dump_model(num_iteration=self._iterations(booster))["tree_info"]:
                offsets.append(len(starts) - 1)
                root = tree["tree_structure"]
                self.bias[part] += weight * root.get("internal_value", root.get("leaf_value", 0.0))
                for path, value in zip(*_leaf_paths(root, tree["num_leaves"]), strict=True):
                    # The leaf's credits to features, then its weighted value in its part's own column.
                    features += [f for f, _ in path] + [n_features + part]
                    deltas += [weight * d for _, d in path] + [weight * value]
                    starts.append(starts[-1] + len(path) + 1)
        self.leaf_offsets_ = np.asarray(offsets, dtype=np.int64)
        self.leaf_finder_ = _merged(self.boosters, [self._iterations(b) for b in self.boosters])
        # Row g: the credits of global leaf g to each feature, and its value; dense for a fast product with
        # the leaves reached (8 bytes x leaves x columns: 1 MB for 3,000 leaves and 42 features).
        self.table_ = csr_matrix((np.asarray(deltas, dtype=np.float64), np.asarray(features, dtype=np.int64),
                                  np.asarray(starts, dtype=np.int64)),
                                 shape=(len(starts) - 1, n_features + len(self.bias))).toarray()

    @staticmethod
    def _iterations(booster: lgb.Booster) -> int | None:
        return booster.best_iteration if booster.best_iteration > 0 else None

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's weighted raw score per part (rows, parts) and its (rows, n_features) contributions."""
        return by_halves(self._explain, X)  # each row is explained on its own

    def _explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(X)
        # One thread: more cost far more as soon as the cores are busy (500 rows: 0.8 ms on one thread,
        # 7 ms on two with another process running; a service shares its cores).
        leaves = self.leaf_finder_.predict(X, pred_leaf=True, num_threads=1).reshape(n, -1)
        leaves = leaves.astype(np.int64) + self.leaf_offsets_
        trees = leaves.shape[1]
        if n == 1:  # the table rows of the leaves reached, added one after another as the product below does
            summed = np.cumsum(self.table_[leaves[0]], axis=0)[-1:]  # (a cumulative sum fixes that order)
        else:
            # Which leaf each row reached in each tree, as a sparse 0/1 (rows, leaves) matrix: its product with
            # the table sums the credits of the leaves reached (a few times faster than gathering them).
            reached = csr_matrix((np.ones(n * trees), leaves.ravel(), np.arange(0, n * trees + 1, trees)),
                                 shape=(n, len(self.table_)))
            # The sparse product sums each row on its own, in the order of its leaves: a customer gets exactly
            # the same numbers alone as in any batch (a dense product's summation order may depend on the rows).
            summed = np.asarray(reached @ self.table_)
        return summed[:, self.n_features:], summed[:, :self.n_features]


def _leaf_paths(root: dict, num_leaves: int) -> tuple[list[list[tuple[int, float]]], list[float]]:
    """For each leaf (by leaf_index): the (split feature, value change) of every step from the root, and
    its value."""
    paths: list[list[tuple[int, float]]] = [[] for _ in range(num_leaves)]
    values = [0.0] * num_leaves
    stack: list[tuple[dict, list[tuple[int, float]]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if "split_feature" not in node:
            paths[node.get("leaf_index", 0)] = path
            values[node.get("leaf_index", 0)] = node["leaf_value"]
            continue
        value = node["internal_value"]
        for child in (node["left_child"], node["right_child"]):
            child_value = child["leaf_value"] if "split_feature" not in child else child["internal_value"]
            stack.append((child, path + [(node["split_feature"], child_value - value)]))
    return paths, values


def _merged(boosters: Sequence[lgb.Booster], iterations: Sequence[int | None]) -> lgb.Booster:
    """One booster holding the trees of ``boosters`` (each up to its iteration count), in order.

    Its leaf indices are those of the boosters side by side (its scores mean nothing: leaves only). The
    model text is LightGBM's own: one header (the boosters share their features), then every tree renumbered;
    the header's ``tree_sizes`` index is dropped, which makes LightGBM read the trees one after another."""
    texts = [booster.model_to_string(num_iteration=it) for booster, it in zip(boosters, iterations, strict=True)]
    header = texts[0].split("\nTree=0\n")[0]
    header = "\n".join(line for line in header.split("\n") if not line.startswith("tree_sizes="))
    trees = [block.partition("\n")[2] for text in texts
             for block in text.split("\nend of trees")[0].split("\nTree=")[1:]]
    return lgb.Booster(model_str=header + "\n" + "".join(f"Tree={i}\n{tree}" for i, tree in enumerate(trees))
                       + "\nend of trees\n")
