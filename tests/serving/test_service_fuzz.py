"""Robustness of the served models: schemathesis against the service's own OpenAPI document (valid and
invalid requests alike must never get a 5xx) and a short concurrent load test without errors."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

AS_OF = "1998-07-01"
LOAD_REQUESTS = 120
LOAD_CLIENTS = 8
FUZZ_EXAMPLES = 50


def test_no_request_gets_a_server_error(model_server):
    """Valid and invalid bodies generated from the served OpenAPI document: any answer but a 5xx.

    (Hypothesis is driven directly: schemathesis' pytest fixture loader does not run under pytest 9.)
    """
    schema = schemathesis.openapi.from_url(model_server.url + "/docs.json")
    schema.config.update(base_url=model_server.url)
    statuses: Counter[int] = Counter()
    for path in ("/predict", "/reload"):
        operation = schema[path]["POST"]
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases)
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            response = case.call(timeout=120)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])

        call()
    assert statuses[200] > 0 and sum(n for code, n in statuses.items() if 400 <= code < 500) > 0, statuses


def test_concurrent_single_customer_requests_all_succeed(model_server, trained_store, customers_json):
    ids = sorted(trained_store.transactions["customer_id"].unique())[:LOAD_REQUESTS]
    bodies = {cid: {"as_of": AS_OF, "customers": customers_json(rows)}
              for cid, rows in trained_store.transactions[trained_store.transactions["customer_id"].isin(ids)]
              .groupby("customer_id")}

    def ask(customer_id: str) -> tuple[str, int, list[str]]:
        with httpx.Client(timeout=120) as client:
            response = client.post(model_server.url + "/predict", json=bodies[customer_id])
        answered = [p["customer_id"] for p in response.json().get("predictions", [])] if response.is_success else []
        return customer_id, response.status_code, answered

    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        results = list(pool.map(ask, ids))
    assert [status for _, status, _ in results] == [200] * LOAD_REQUESTS
    assert all(answered == [cid] for cid, _, answered in results), "an answer went to the wrong request"
