"""Maximum likelihood over the log of a model's parameters, shared by BG/NBD and Gamma-Gamma.

Both models have closed-form log-likelihoods (``gammaln``/``betaln``) and exact gradients; L-BFGS-B
optimises over log parameters so that every parameter stays positive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

FloatArray = NDArray[np.float64]
LogLikGrad = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


def as_float(*arrays: ArrayLike) -> tuple[FloatArray, ...]:
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def fit_log_params(
    ll_and_grad: LogLikGrad, weights: FloatArray, x0: FloatArray, l2_penalty: float
) -> FloatArray:
    """Maximise the weighted mean log-likelihood - ``l2_penalty * ||log params||^2`` over log params.

    ``ll_and_grad(params)`` returns per-row log-likelihoods (n,) and their gradient (n, k) with
    respect to the parameters; L-BFGS-B gets the exact gradient by the chain rule d/dlog(theta) =
    theta d/dtheta.
    """

    # The sums over customers are numpy's, not BLAS products: a multi-threaded BLAS splits them by its thread
    # count, which would make the fitted parameters depend on the machine's cores (and its threads only spin).
    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(log_params)
        ll, grad = ll_and_grad(params)
        value = -float(np.sum(weights * ll)) + l2_penalty * float(np.sum(log_params * log_params))
        return value, -np.sum(weights[:, None] * grad, axis=0) * params + 2.0 * l2_penalty * log_params

    result = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * len(x0),
                      options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-9})
    if not np.isfinite(result.fun):
        raise RuntimeError(f"maximum-likelihood fit failed: {result.message}")
    return np.exp(result.x)
