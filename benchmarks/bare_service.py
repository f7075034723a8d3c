"""The floor of the service benchmark: a bare BentoML service with the same request parsing and the same
response shape as ``tiercast.serving.service``, but no features, models, tiers, token or size checks.

    python benchmarks/bare_service.py --port 3001

What the real service costs above this floor is what tiercast itself adds to a request.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path

import bentoml

from tiercast.serving.api import CustomerIn, Prediction, PredictResponse, request_model
from tiercast.serving.config import ServiceConfig

FloorRequest = request_model(ServiceConfig())


@bentoml.service(name="tiercast-floor", workers=1)
class Floor:
    @bentoml.api(route="/predict", input_spec=FloorRequest, output_spec=PredictResponse)
    async def predict(self, customers: list[CustomerIn], as_of: datetime | None = None) -> PredictResponse:
        """A constant answer per customer, built with the service's response models; answered in the event
        loop, as the service's predictions are."""
        return PredictResponse(model_version="floor", as_of=as_of or datetime(2000, 1, 1), predictions=[
            Prediction(customer_id=c.customer_id, tier="floor", segment="floor", lifecycle_stage="active",
                       predicted_value=0.0, churn_probability=0.0, action="none", source="fallback",
                       fallback_reason="floor service", reasons=[], membership="none",
                       avg_days_between_orders=None, expected_next_order_date=None, next_order_probability=0.0,
                       churn_risk_band="low", segment_code="floor", lifecycle_stage_code="active",
                       churn_risk_band_code="low") for c in customers])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args()
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    bentoml.serve("bare_service:Floor", working_dir=str(Path(__file__).resolve().parent), host=args.host,
                  port=args.port, blocking=True)


if __name__ == "__main__":
    main()
