"""The service drops personal-data profile attributes by the loader's and the builder's rule
(:mod:`tiercast.features.privacy`): spelled with capitals, spaces or a hyphen, they are still personal."""

from __future__ import annotations

from tiercast.serving.api import PredictRequest, to_frames


def test_personal_attributes_are_dropped_however_spelled():
    request = PredictRequest.model_validate({"customers": [
        {"customer_id": "A", "transactions": [{"timestamp": "1998-01-02", "amount": 10.0}],
         "profile": {"E-Mail": "ann@x.org", " PHONE ": "555-0101", "Home_Address": "1 Main St", "plan": "gold"}}]})
    _, people, _ = to_frames(request.customers, ["email", "phone", "home address"])
    assert list(people.columns) == ["customer_id", "plan", "signup_date"]
