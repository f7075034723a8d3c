"""The prediction service over real HTTP (servers from conftest.py): fallback and model answers, request
validation, token, limits, time zones, personal data in logs, parity with the batch scorer, and reload; and,
in process, the conversion of requests to frames and of the scorer's table to the response."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tiercast.serving.api import (
    FALLBACK_VERSION,
    NO_HISTORY_REASON,
    PredictRequest,
    PredictResponse,
    response_json,
    response_payload,
    to_frames,
    to_response,
)
from tiercast.serving.config import ServingSettings
from tiercast.serving.scorer import ModelBundle, score
from tiercast.serving.model_slot import ReloadSignal
from tiercast.training.classic.forecast import CLASSIC_COLUMNS, ClassicFeatures
from tiercast.training.classic.rfm import RFM_INPUTS
from tiercast.training.classic.seasonality import SeasonalClock
from tiercast.training.registry import configure_mlflow

AS_OF = "1998-07-01"
EMAIL = "jane.doe.4711@example.com"
COMPARED = ["tier", "segment", "lifecycle_stage", "action", "source", "reasons"]


def _customer(customer_id: str, *lines: tuple[str, float], **profile: object) -> dict[str, object]:
    return {"customer_id": customer_id, "profile": profile,
            "transactions": [{"timestamp": ts, "amount": amount} for ts, amount in lines]}


def _raw(server, text: str) -> httpx.Response:
    return httpx.post(server.url + "/predict", content=text.encode(), timeout=60,
                      headers={**server.headers(), "Content-Type": "application/json"})


def _assert_same(answer: list[dict[str, object]], batch: pd.DataFrame) -> None:
    served = pd.DataFrame(answer).set_index("customer_id")
    expected = batch.set_index("customer_id").loc[served.index]
    # Exactly: a customer alone gets the batch's numbers to the last digit (JSON floats round-trip).
    for column in ("predicted_value", "churn_probability", *COMPARED):
        assert served[column].tolist() == expected[column].tolist(), column


# ------------------------------------------------------------------------------------ fallback server
def test_probes_metrics_and_openapi_need_no_token(fallback_server):
    for path in ("/readyz", "/livez", "/healthz", "/metrics"):
        assert httpx.get(fallback_server.url + path, timeout=10).status_code == 200, path
    spec = httpx.get(fallback_server.url + "/docs.json", timeout=10).json()
    assert {"/predict", "/reload"} <= set(spec["paths"])
    assert '"maxItems": 20' in json.dumps(spec), "the configured customer limit is part of the schema"


def test_model_endpoint_says_the_rules_answer_without_models(fallback_server):
    card = httpx.get(fallback_server.url + "/model", timeout=10).json()
    assert card["source"] == "fallback" and card["quality_card"] is None and card["detail"]


def test_without_models_every_customer_gets_the_fallback_in_request_order(fallback_server):
    body = {"as_of": AS_OF, "customers": [
        _customer("B", ("1998-03-01", 40.0), ("1997-11-20", 25.0)),
        _customer("A", ("1997-02-01", 12.5)),
        _customer("C"),
        _customer("D", ("1998-07-01T00:00:00", 99.0)),  # at the cutoff: not history
    ]}
    response = fallback_server.post("/predict", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert PredictResponse.model_validate(answer).model_dump(mode="json") == answer  # the schema, nothing more
    assert answer["model_version"] == FALLBACK_VERSION
    predictions = answer["predictions"]
    assert [p["customer_id"] for p in predictions] == ["B", "A", "C", "D"]
    assert {p["source"] for p in predictions} == {"fallback"}
    assert all("no 'champion' models in the registry" in p["fallback_reason"] for p in predictions[:2])
    assert [p["fallback_reason"] for p in predictions[2:]] == [NO_HISTORY_REASON] * 2
    policy = fallback_server.settings.policy
    assert {p["tier"] for p in predictions[2:]} == {policy.new_customer.name}
    assert all(p["reasons"] and p["tier"] and p["action"] for p in predictions)
    metrics = httpx.get(fallback_server.url + "/metrics", timeout=10).text
    assert 'tiercast_predictions_total{source="fallback"}' in metrics


def test_fallback_numbers_are_the_batch_scorers(fallback_server, cdnow, customers_json):
    """Parity without models: the served rule fallback equals tiercast.serving.scorer.score on the same data."""
    lines = cdnow["customer_id"].value_counts().sort_index()
    ids = lines[lines <= 50].index[5000:5020]  # within the server's limits
    tx = cdnow[cdnow["customer_id"].isin(ids)].reset_index(drop=True)
    response = fallback_server.post("/predict", {"as_of": AS_OF, "customers": customers_json(tx)})
    assert response.status_code == 200, response.text
    s = fallback_server.settings
    batch = score(cdnow, pd.Timestamp(AS_OF), s.policy, s.features, None, s.fallback, horizon_days=s.horizon_days)
    _assert_same(response.json()["predictions"], batch)


@pytest.mark.parametrize(("timestamp", "has_history"), [
    ("1998-06-30T23:30:00-02:00", False),  # 1998-07-01 01:30 UTC: after the cutoff
    ("1998-07-01T01:30:00+02:00", True),  # 1998-06-30 23:30 UTC: before it
    ("1998-06-30T23:59:59Z", True),
])
def test_timestamps_are_converted_to_utc(fallback_server, timestamp, has_history):
    response = fallback_server.post("/predict", {"as_of": AS_OF, "customers": [_customer("T", (timestamp, 10.0))]})
    assert response.status_code == 200, response.text
    reason = response.json()["predictions"][0]["fallback_reason"]
    assert (reason != NO_HISTORY_REASON) is has_history


def test_as_of_defaults_to_now_utc(fallback_server):
    response = fallback_server.post("/predict", {"customers": [_customer("N", ("2020-01-05", 10.0))]})
    assert response.status_code == 200, response.text
    served = datetime.fromisoformat(response.json()["as_of"])
    assert abs((datetime.now(timezone.utc).replace(tzinfo=None) - served).total_seconds()) < 120
    assert response.json()["predictions"][0]["lifecycle_stage"] == "lost"


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz"])
def test_token_is_required_when_configured(fallback_server, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.post(fallback_server.url + "/predict", json={"customers": [_customer("C")]},
                          headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.post(fallback_server.url + "/reload", headers=headers, timeout=30).status_code == 401


def test_oversized_bodies_are_refused(fallback_server):
    lines = [{"timestamp": "1998-01-01", "amount": 1.0, "category": "x" * 400} for _ in range(50)]
    body = {"customers": [{"customer_id": f"C{i}", "transactions": lines} for i in range(20)]}
    assert len(json.dumps(body)) > fallback_server.settings.service.max_request_bytes
    assert fallback_server.post("/predict", body).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds for streamed bodies too
        yield b'{"customers": ['
        for i in range(2000):
            yield json.dumps(_customer(f"C{i}", ("1998-01-01", 1.0))).encode() + b","
        yield b"]}"

    response = httpx.post(fallback_server.url + "/predict", content=chunks(), timeout=60,
                          headers={**fallback_server.headers(), "Content-Type": "application/json"})
    assert response.status_code == 413


def test_only_json_is_accepted(fallback_server):
    response = httpx.post(fallback_server.url + "/predict", data={"customers": "C1"},
                          headers=fallback_server.headers(), timeout=30)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


_TX = {"timestamp": "1998-01-01", "amount": 1.0}
INVALID = {
    "missing customers": ({"as_of": AS_OF}, "customers: Field required"),
    "empty body": ("", "customers: Field required"),
    "customers not a list": ({"customers": "C1"}, "customers: Input should be a valid array"),
    "no customers": ({"customers": []}, "customers: List should have at least 1 item"),
    "numeric customer_id": ({"customers": [{"customer_id": 42}]}, "customers[0].customer_id"),
    "blank customer_id": ({"customers": [{"customer_id": "  "}]}, "customers[0].customer_id"),
    "amount as text": ({"customers": [{"customer_id": "C", "transactions": [{**_TX, "amount": "12"}]}]},
                       "customers[0].transactions[0].amount: Input should be a valid number"),
    "NaN amount": ('{"customers": [{"customer_id": "C", "transactions": '
                   '[{"timestamp": "1998-01-01", "amount": NaN}]}]}',
                   "customers[0].transactions[0].amount: Input should be a finite number"),
    "infinite amount": ('{"customers": [{"customer_id": "C", "transactions": '
                        '[{"timestamp": "1998-01-01", "amount": 1e999}]}]}',
                        "customers[0].transactions[0].amount: Input should be a finite number"),
    "huge amount": ({"customers": [{"customer_id": "C", "transactions": [{**_TX, "amount": 1e300}]}]},
                    "customers[0].transactions[0].amount"),
    "missing amount": ({"customers": [{"customer_id": "C", "transactions": [{"timestamp": "1998-01-01"}]}]},
                       "customers[0].transactions[0].amount: Field required"),
    "bad timestamp": ({"customers": [{"customer_id": "C", "transactions": [{**_TX, "timestamp": "1998-13-01"}]}]},
                      "customers[0].transactions[0].timestamp"),
    "numeric timestamp": ({"customers": [{"customer_id": "C", "transactions": [{**_TX, "timestamp": 883612800}]}]},
                          "customers[0].transactions[0].timestamp"),
    "timestamp out of range": ({"customers": [{"customer_id": "C",
                                               "transactions": [{**_TX, "timestamp": "1850-06-01"}]}]},
                               "customers[0].transactions[0].timestamp"),
    "offset at year 1": ({"customers": [{"customer_id": "C",
                                         "transactions": [{**_TX, "timestamp": "0001-01-01T00:00:00+05:00"}]}]},
                         "customers[0].transactions[0].timestamp: Value error, must be between"),
    "bad as_of": ({"as_of": "yesterday", "customers": [{"customer_id": "C"}]}, "as_of"),
    "too many customers": ({"customers": [{"customer_id": f"C{i}"} for i in range(21)]},
                           "customers: List should have at most 20 items"),
    "too many transactions": ({"customers": [{"customer_id": "C", "transactions": [_TX] * 51}]},
                              "customers[0].transactions: List should have at most 50 items"),
    "repeated customer": ({"customers": [{"customer_id": "C"}, {"customer_id": "C"}]},
                          "customers[1].customer_id repeats customers[0].customer_id"),
    "unknown field": ({"customers": [{"customer_id": "C", "transaction": []}]},
                      "customers[0].transaction: Extra inputs are not permitted"),
    "too many profile names": ({"customers": [{"customer_id": f"C{i}", "profile": {f"a{i}_{j}": j for j in range(11)}}
                                              for i in range(20)]}, "customers: Value error, the profiles use 220"),
    "nested profile value": ({"customers": [{"customer_id": "C", "profile": {"tier": {"a": 1}}}]},
                             "customers[0].profile.tier"),
    "bad signup_date": ({"customers": [{"customer_id": "C", "profile": {"signup_date": "soon"}}]},
                        "customers[0].profile.signup_date"),
    "interaction without kind": ({"customers": [{"customer_id": "C",
                                                 "interactions": [{"timestamp": "1998-01-01"}]}]},
                                 "customers[0].interactions[0].kind: Field required"),
    "not JSON": ('{"customers": [', "body: Invalid JSON"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_bad_input_gets_a_4xx_naming_the_field(fallback_server, case):
    body, expected = INVALID[case]
    response = _raw(fallback_server, body) if isinstance(body, str) else fallback_server.post("/predict", body)
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]


def test_personal_data_is_not_logged(fallback_server):
    good = {"as_of": AS_OF, "customers": [_customer("P", ("1998-01-01", 5.0), email=EMAIL, name="Jane Doe")]}
    bad = {"customers": [_customer("P", ("1998-01-01", 5.0), email=EMAIL, extra={"email": EMAIL})]}
    assert fallback_server.post("/predict", good).status_code == 200
    assert fallback_server.post("/predict", bad).status_code == 400
    log = fallback_server.log()
    assert "path=/predict" in log, "the access log is being written"
    assert EMAIL not in log and "Jane Doe" not in log


def test_reload_without_models_keeps_the_fallback(fallback_server):
    response = fallback_server.post("/reload", None)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == FALLBACK_VERSION
    assert response.json()["changed"] is False


# ------------------------------------------------------------------------------------ conversion, in process
def test_frames_have_the_optional_columns_sent_and_no_personal_data():
    request = PredictRequest.model_validate({"customers": [
        {"customer_id": "A", "transactions": [
            {"timestamp": "1998-01-02T10:00:00+02:00", "amount": 10.0, "order_id": "o1", "quantity": 2},
            {"timestamp": "1998-01-02T10:00:00+02:00", "amount": 10.0, "order_id": "o1", "quantity": 2},  # alike
            {"timestamp": "1998-02-03", "amount": -4.0, "category": "jazz"}],
         "profile": {"signup_date": "1997-12-01", "Email": EMAIL, "plan": "gold"},
         "interactions": [{"timestamp": "1998-01-05", "kind": "Visit", "score": 0.5},
                          {"timestamp": "1998-01-06", "kind": "email_open"}]},
        {"customer_id": "B", "transactions": [{"timestamp": "1998-03-04", "amount": 7.5}]},
        {"customer_id": "C"}]})
    tx, people, interactions = to_frames(request.customers, ["email"])
    assert tx.dtypes.astype(str).to_dict() == {
        "customer_id": "object", "timestamp": "datetime64[ns]", "amount": "float64", "order_id": "object",
        "category": "object", "quantity": "float64"}  # no line has a channel
    assert tx["customer_id"].tolist() == ["A", "A", "A", "B"]  # the line alike an earlier one is kept
    assert tx["timestamp"].tolist() == [pd.Timestamp("1998-01-02 08:00"), pd.Timestamp("1998-01-02 08:00"),
                                        pd.Timestamp("1998-02-03"), pd.Timestamp("1998-03-04")]
    assert tx["order_id"].tolist() == ["o1", "o1", None, None]
    assert tx["quantity"].isna().tolist() == [False, False, True, True]
    assert to_frames(request.customers, ["email"], drop_identical_rows=True)[0]["order_id"].tolist() == [
        "o1", None, None]
    assert people.to_dict("records") == [{"customer_id": "A", "plan": "gold",
                                          "signup_date": pd.Timestamp("1997-12-01")}]
    assert interactions["kind"].tolist() == ["visit", "email_open"]
    assert interactions["score"].isna().tolist() == [False, True]
    bare, people, interactions = to_frames(request.customers[1:])
    assert bare.dtypes.astype(str).to_dict() == {"customer_id": "object", "timestamp": "datetime64[ns]",
                                                 "amount": "float64"}
    assert people is None and interactions is None


def test_response_is_in_request_order_with_plain_values():
    s = ServingSettings()
    request = PredictRequest.model_validate({"customers": [
        _customer("B", ("1998-03-01", 40.0), ("1997-11-20", 25.0)), _customer("N"),
        _customer("A", ("1998-01-01", 5.0))]})
    tx, _, _ = to_frames(request.customers)
    scored = score(tx, pd.Timestamp(AS_OF), s.policy, s.features, None, s.fallback)
    response = to_response(["B", "N", "A"], scored, datetime(1998, 7, 1), FALLBACK_VERSION, s.policy, s.fallback)
    b, n, a = response.predictions
    assert [b.customer_id, n.customer_id, a.customer_id] == ["B", "N", "A"]
    assert a.avg_days_between_orders is None and b.avg_days_between_orders == 101.0  # one purchase day: no gap
    assert n.fallback_reason == NO_HISTORY_REASON and n.reasons == [NO_HISTORY_REASON]
    for prediction in response.predictions:
        assert all(type(v) in (str, float, list, type(None)) for v in prediction.__dict__.values())


def test_response_json_is_the_validated_models_json(champion, trained_store):
    """The service writes its answer from plain values; byte for byte what the validated model would write, for
    model answers, fallbacks and customers without history alike."""
    s = ServingSettings()
    ids = sorted(trained_store.transactions["customer_id"].unique())[:30]
    tx = trained_store.transactions[trained_store.transactions["customer_id"].isin(ids)]
    asked = ["new customer", *ids[::-1]]
    for bundle, version in ((champion, champion.version_label), (None, FALLBACK_VERSION)):
        scored = score(tx, pd.Timestamp(AS_OF), s.policy, s.features, bundle, s.fallback)
        payload = response_payload(asked, scored, datetime(1998, 7, 1), version, s.policy, s.fallback)
        model = PredictResponse.model_validate(payload)
        assert response_json(payload) == model.model_dump_json().encode()
        assert {p.source for p in model.predictions} == ({"model", "fallback"} if bundle else {"fallback"})


def test_response_json_matches_the_model_on_awkward_values():
    """Numbers at the edges of their notation, non-finite ones, -0.0, text that needs escaping and times with
    microseconds: written as the validated model writes them."""
    s = ServingSettings()
    scored = score(pd.DataFrame({"customer_id": ["x"], "timestamp": [pd.Timestamp("1998-01-01")], "amount": [5.0]}),
                   pd.Timestamp(AS_OF), s.policy, s.features, None, s.fallback)
    base = response_payload(["x"], scored, datetime(1998, 7, 1), FALLBACK_VERSION, s.policy, s.fallback)
    texts = ['quote " back \\ slash', "tab\tnew\nline\x01\x1f\x7f", "é 客户 😀", "</script>", ""]
    numbers = [1e16, 1e-7, 123456789.123, -0.0, 5e-324, 1.7976931348623157e308, float("nan"), float("inf"),
               -float("inf"), 0.1 + 0.2]
    for i, (text, number) in enumerate(zip(texts * 2, numbers, strict=True)):
        prediction = {**base["predictions"][0], "customer_id": text, "segment": text, "reasons": [text, text],
                      "predicted_value": number, "churn_probability": -number, "avg_days_between_orders": number}
        payload = {**base, "as_of": datetime(1998, 7, 1, 12, 30, 5, 250 * i), "predictions": [prediction]}
        assert response_json(payload) == PredictResponse.model_validate(payload).model_dump_json().encode()
    # numpy scalars, and a type orjson does not write at all (answered through the model, not failed)
    for odd in ({"predicted_value": np.float64(2.5), "tier": np.str_("gold"), "reasons": [np.str_("a"), "b"]},
                {"predicted_value": Decimal("2.5"), "churn_probability": np.float32(0.25)}):
        payload = {**base, "predictions": [{**base["predictions"][0], **odd}]}
        assert response_json(payload) == PredictResponse.model_validate(payload).model_dump_json().encode()


# --------------------------------------------------------------------------------------- model server
@pytest.fixture
def served_store(model_server, monkeypatch) -> Iterator[str]:
    """MLflow in this process pointed at the model server's store (its global URIs restored afterwards)."""
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model_server.tracking_uri)
    try:
        yield configure_mlflow()
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@pytest.fixture
def champion(model_server, served_store) -> ModelBundle:
    """The served champion, loaded in this process."""
    return ModelBundle.load(model_server.settings.registry, model_server.settings.service.model_alias)


def test_champion_models_answer_with_their_version(model_server, trained_store, customers_json):
    ids = sorted(trained_store.transactions["customer_id"].unique())[:25]
    tx = trained_store.transactions[trained_store.transactions["customer_id"].isin(ids)]
    response = model_server.post("/predict", {"as_of": AS_OF, "customers": customers_json(tx)})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert PredictResponse.model_validate(answer).model_dump(mode="json") == answer  # the schema, nothing more
    assert answer["model_version"] == "tiercast-value v1, tiercast-churn v1, tiercast-segments v1"
    assert [p["customer_id"] for p in answer["predictions"]] == ids
    assert {p["source"] for p in answer["predictions"]} == {"model"}
    assert all(p["fallback_reason"] is None and p["reasons"] for p in answer["predictions"])
    assert all(0 <= p["churn_probability"] <= 1 and p["predicted_value"] >= 0 for p in answer["predictions"])


def test_model_endpoint_returns_the_champions_quality_card(model_server, champion):
    answer = httpx.get(model_server.url + "/model", timeout=10).json()
    assert answer["source"] == "model" and answer["model_version"] == champion.version_label
    assert answer["quality_card"] == champion.quality_card
    assert answer["quality_card"]["grade"] in ("A", "B", "C", "D") and answer["quality_card"]["summary"]


def test_predictions_carry_the_crm_fields(model_server, trained_store, customers_json):
    ids = sorted(trained_store.transactions["customer_id"].unique())[:5]
    tx = trained_store.transactions[trained_store.transactions["customer_id"].isin(ids)]
    answer = model_server.post("/predict", {"as_of": AS_OF, "customers": customers_json(tx)}).json()
    for p in answer["predictions"]:
        assert p["churn_risk_band"] in ("low", "medium", "high") and p["membership"]
        assert p["expected_next_order_date"] >= AS_OF[:10]
        assert p["next_order_probability"] == pytest.approx(1 - p["churn_probability"])


def test_served_predictions_equal_the_batch_scorer(model_server, trained_store, champion, customers_json):
    """Online = batch: 40 customers served alone get the numbers a batch over all 3,000 gives them."""
    s = model_server.settings
    population = trained_store.transactions
    batch = score(population, pd.Timestamp(AS_OF), s.policy, s.features, champion, s.fallback,
                  horizon_days=s.horizon_days)
    assert batch["source"].eq("model").all()
    ids = sorted(population["customer_id"].unique())[::75]
    tx = population[population["customer_id"].isin(ids)]
    response = model_server.post("/predict", {"as_of": AS_OF, "customers": customers_json(tx)})
    assert response.status_code == 200, response.text
    _assert_same(response.json()["predictions"], batch)


def _fit_on_clock(classic: ClassicFeatures, clock: SeasonalClock) -> ClassicFeatures:
    """The fitted parameters of ``classic`` with its times (recency, tenure, the horizon) on ``clock``."""
    other = ClassicFeatures(classic.horizon_days, clock)
    vars(other).update({name: value for name, value in vars(classic).items() if name.endswith("_")})
    other.horizon_ = clock.after(classic.horizon_days)
    return other


def test_a_champion_scoring_after_its_cutoff_forecasts_on_the_clock_of_the_as_of(
        model_server, trained_store, champion, customers_json):
    """The champion (trained at AS_OF, on a seasonal clock) scoring 90 days later: its classic columns are
    those of the same fit with the clock anchored at the later date, in the batch and in the service alike."""
    s = model_server.settings
    trained_at, later = pd.Timestamp(AS_OF), pd.Timestamp(AS_OF) + pd.Timedelta(days=90)
    classic = champion.value.classic_
    assert classic.clock.index is not None and classic.clock.anchor == trained_at
    at_cutoff = champion.at(trained_at)  # scoring at the cutoff: the models as trained
    assert at_cutoff.value is champion.value and at_cutoff.churn is champion.churn
    population = trained_store.transactions
    features = champion.builder.transform_columns(population, later)
    rfm = np.column_stack([features[name] for name in RFM_INPUTS])
    on_later_clock = _fit_on_clock(classic, SeasonalClock(later, classic.clock.index)).forecast(rfm)
    assert not np.allclose(classic.forecast(rfm), on_later_clock, rtol=0.01)  # the cutoff's clock is another
    anchored = champion.at(later)
    for model in (anchored.value, anchored.churn):
        assert np.array_equal(model.prepare(features).matrix[:, -len(CLASSIC_COLUMNS):], on_later_clock)
    batch = score(population, later, s.policy, s.features, champion, s.fallback, horizon_days=s.horizon_days)
    modelled = batch["source"].eq("model").to_numpy()
    assert modelled.mean() > 0.9
    (value, _), (churn, _) = anchored.explain(features)
    assert np.array_equal(batch["predicted_value"].to_numpy()[modelled], value[modelled])
    assert np.array_equal(batch["churn_probability"].to_numpy()[modelled], churn[modelled])
    ids = sorted(population["customer_id"].unique())[::150]
    response = model_server.post("/predict", {"as_of": str(later.date()),
                                              "customers": customers_json(population[population["customer_id"].isin(ids)])})
    assert response.status_code == 200, response.text
    _assert_same(response.json()["predictions"], batch)


@contextmanager
def _promoted_copy(server) -> Iterator[tuple[str, str]]:
    """The server's champions registered again as new versions (same artifacts) and given its alias; the old
    versions get it back afterwards. Yields the model_version labels of the old and the new champion."""
    registry, alias = server.settings.registry, server.settings.service.model_alias
    client = MlflowClient()
    names = (registry.value_model, registry.churn_model, registry.segment_model)
    old = {name: client.get_model_version_by_alias(name, alias) for name in names}
    try:
        new = {name: client.create_model_version(name, source=old[name].source, run_id=old[name].run_id)
               for name in names}
        for name in names:
            client.set_registered_model_alias(name, alias, new[name].version)
        yield (", ".join(f"{name} v{old[name].version}" for name in names),
               ", ".join(f"{name} v{new[name].version}" for name in names))
    finally:
        for name in names:
            client.set_registered_model_alias(name, alias, old[name].version)


def test_reload_picks_up_a_newly_promoted_champion(model_server, trained_store, served_store, customers_json):
    body = {"as_of": AS_OF, "customers": customers_json(trained_store.transactions.head(30))}
    before = model_server.post("/predict", body).json()
    assert model_server.post("/reload", None).json()["changed"] is False
    with _promoted_copy(model_server) as (label, promoted):
        assert before["model_version"] == label
        reloaded = model_server.post("/reload", None).json()
        assert reloaded["changed"] is True
        after = model_server.post("/predict", body).json()
        assert after["model_version"] == reloaded["model_version"] == promoted
        assert "v2" in after["model_version"]
        assert after["predictions"] == before["predictions"]
    assert model_server.post("/reload", None).json()["model_version"] == before["model_version"]


def test_reload_signal_carries_a_new_token_each_time(tmp_path):
    signal = ReloadSignal(tmp_path / "reload")
    assert signal.read() == ""  # nothing sent yet
    first = signal.send()
    assert signal.read() == first
    second = signal.send()
    assert second != first and signal.read() == second
    assert [p.name for p in tmp_path.iterdir()] == ["reload"]  # no partial files left behind


def _workers_answering_with(server, label: str, timeout_s: float = 60.0) -> set[str]:
    """The worker ids whose log says they answer with ``label``, once both do (or the timeout passes). The
    server is ready when one worker is; the other may still be loading its models."""
    deadline = time.monotonic() + timeout_s
    while True:
        said = re.findall(r"\[entry_service:tiercast:(\d+)\] answering with " + re.escape(label), server.log())
        if set(said) == {"1", "2"} or time.monotonic() > deadline:
            return set(said)
        time.sleep(0.2)


def test_a_reload_reaches_every_worker(two_worker_server, served_store, customers_json, trained_store):
    server = two_worker_server
    body = {"as_of": AS_OF, "customers": customers_json(trained_store.transactions.head(3))}
    with _promoted_copy(server) as (label, promoted):
        assert _workers_answering_with(server, label) == {"1", "2"}  # two workers, each with the champion
        reloaded = server.post("/reload", None).json()
        assert reloaded["changed"] is True and reloaded["model_version"] == promoted
        assert _workers_answering_with(server, promoted) == {"1", "2"}  # the other worker followed the signal
        # Concurrent callers, each on its own connection, reach both workers: all get the new champion.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: server.post("/predict", body), range(16)))
        assert {a.status_code for a in answers} == {200}
        assert {a.json()["model_version"] for a in answers} == {promoted}
    server.post("/reload", None)


def _served_version(server, expected: str, timeout_s: float = 60.0) -> str:
    """GET /model until it names ``expected`` (or the timeout passes); the last version seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = httpx.get(server.url + "/model", timeout=30).json()["model_version"]
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_the_service_follows_its_alias_without_a_reload_call(following_server, served_store):
    with _promoted_copy(following_server) as (label, promoted):
        assert _served_version(following_server, promoted) == promoted
    assert _served_version(following_server, label) == label
