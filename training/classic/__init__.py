"""The classic customer-base models, one per module, in the style of lifetimes: BG/NBD (:mod:`.bgnbd`),
Gamma-Gamma (:mod:`.gamma_gamma`), the RFM inputs they read (:mod:`.rfm`), the CLV baseline fitted on
transactions (:mod:`.clv`), the classic forecast columns of a feature row (:mod:`.forecast`) and the
seasonal clock they may run on (:mod:`.seasonality`)."""

from tiercast.training.classic.bgnbd import BetaGeoFitter, BetaGeoParams
from tiercast.training.classic.clv import ClassicCLV
from tiercast.training.classic.forecast import CLASSIC_COLUMNS, ClassicFeatures, add_classic_columns
from tiercast.training.classic.gamma_gamma import GammaGammaFitter, GammaGammaParams
from tiercast.training.classic.rfm import RFM_INPUTS, rfm_summary
from tiercast.training.classic.seasonality import SeasonalClock, seasonal_clock

__all__ = ["CLASSIC_COLUMNS", "RFM_INPUTS", "BetaGeoFitter", "BetaGeoParams", "ClassicCLV", "ClassicFeatures",
           "GammaGammaFitter", "GammaGammaParams", "SeasonalClock", "add_classic_columns", "rfm_summary",
           "seasonal_clock"]
