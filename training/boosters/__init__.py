"""The LightGBM models: the value model (:mod:`.value`), the churn model (:mod:`.churn`) and their shared
cross-fitting base (:mod:`.cross_fitted`)."""

from tiercast.training.boosters.churn import ChurnModel
from tiercast.training.boosters.cross_fitted import ModelInputs, customer_folds
from tiercast.training.boosters.value import ValueModel

__all__ = ["ChurnModel", "ModelInputs", "ValueModel", "customer_folds"]
