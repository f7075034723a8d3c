"""The canonical tables are declared once (tiercast.features.schema): the file loader and the service's request
models take the same values of every column the same way, and refuse the same ones."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from tiercast.features.loading import load_customers, load_interactions, load_transactions
from tiercast.features.schema import CUSTOMERS, INTERACTIONS, SCORED, TRANSACTIONS, DataConfig, DataError
from tiercast.serving.api import PREDICTION_FIELDS, CustomerIn, PredictResponse, request_model, to_frames
from tiercast.serving.config import ServiceConfig
from tiercast.serving.scorer import EXTRA_COLUMNS, SCORE_COLUMNS

REFUSED = "refused"
MISSING = "missing"
TS = pd.Timestamp

# (table, column, cell as text in a CSV file, value in the service's JSON, what both make of it)
CASES: list[tuple[str, str, str, Any, Any]] = [
    ("transactions", "customer_id", " 00042 ", " 00042 ", "00042"),
    ("transactions", "customer_id", "", "", REFUSED),
    ("transactions", "customer_id", "  ", "  ", REFUSED),
    ("transactions", "customer_id", "nan", "nan", REFUSED),
    ("transactions", "customer_id", "None", "None", REFUSED),
    ("transactions", "customer_id", "x" * 200, "x" * 200, "x" * 200),
    ("transactions", "customer_id", "x" * 201, "x" * 201, REFUSED),
    ("transactions", "timestamp", "2025-01-01", "2025-01-01", TS("2025-01-01")),
    ("transactions", "timestamp", " 2025-01-01 ", " 2025-01-01 ", TS("2025-01-01")),
    ("transactions", "timestamp", "2025-01-01 10:00", "2025-01-01 10:00", TS("2025-01-01 10:00")),
    ("transactions", "timestamp", "2025-01-01T10:00:00.123456", "2025-01-01T10:00:00.123456",
     TS("2025-01-01 10:00:00.123456")),
    ("transactions", "timestamp", "2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z", TS("2025-01-01 10:00")),
    ("transactions", "timestamp", "2025-01-01T23:30:00-02:00", "2025-01-01T23:30:00-02:00", TS("2025-01-02 01:30")),
    ("transactions", "timestamp", "2025-01-01T10:00:00+0530", "2025-01-01T10:00:00+0530", TS("2025-01-01 04:30")),
    ("transactions", "timestamp", "1899-12-31T23:00:00-02:00", "1899-12-31T23:00:00-02:00", TS("1900-01-01 01:00")),
    ("transactions", "timestamp", "1850-06-01", "1850-06-01", REFUSED),
    ("transactions", "timestamp", "2200-01-01", "2200-01-01", REFUSED),
    ("transactions", "timestamp", "0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00+05:00", REFUSED),
    ("transactions", "timestamp", "yesterday", "yesterday", REFUSED),
    ("transactions", "timestamp", "2025-13-01", "2025-13-01", REFUSED),
    ("transactions", "timestamp", "2025-02-30", "2025-02-30", REFUSED),
    ("transactions", "timestamp", "20250101", "20250101", REFUSED),  # not a unix time either
    ("transactions", "timestamp", "883612800", "883612800", REFUSED),
    ("transactions", "timestamp", "2025-01", "2025-01", REFUSED),
    ("transactions", "timestamp", "2025-01-01T10", "2025-01-01T10", REFUSED),
    ("transactions", "timestamp", "2025-01-01t10:00", "2025-01-01t10:00", REFUSED),
    ("transactions", "timestamp", "2025-01-01T10:00:00,5", "2025-01-01T10:00:00,5", REFUSED),
    ("transactions", "timestamp", "2025-01-01T10:00:00.1234567", "2025-01-01T10:00:00.1234567", REFUSED),
    ("transactions", "timestamp", "2025-01-01T10:00:00+05", "2025-01-01T10:00:00+05", REFUSED),
    ("transactions", "timestamp", "2025-W01", "2025-W01", REFUSED),
    ("transactions", "timestamp", "", "", REFUSED),
    ("transactions", "amount", "10.5", 10.5, 10.5),
    ("transactions", "amount", "-3", -3.0, -3.0),
    ("transactions", "amount", "0", 0.0, 0.0),
    ("transactions", "amount", "1e12", 1e12, 1e12),
    ("transactions", "amount", "-1e12", -1e12, -1e12),
    ("transactions", "amount", "1.5e12", 1.5e12, REFUSED),
    ("transactions", "amount", "inf", math.inf, REFUSED),
    ("transactions", "amount", "nan", math.nan, REFUSED),
    ("transactions", "amount", "", None, REFUSED),
    # A spreadsheet's formatted amounts in a file are JSON numbers in a request; the forms that could mean two
    # numbers are refused in the file, and text is never an amount in a request.
    ("transactions", "amount", "1,234.50", 1234.5, 1234.5),
    ("transactions", "amount", "1,234", 1234.0, 1234.0),
    ("transactions", "amount", "¥12.00", 12.0, 12.0),
    ("transactions", "amount", "-€5.00", -5.0, -5.0),
    ("transactions", "amount", "1.234,50", "1.234,50", REFUSED),
    ("transactions", "amount", "12,5", "12,5", REFUSED),
    ("transactions", "amount", "1,23", "1,23", REFUSED),
    ("transactions", "amount", "$1,000,000,000,000.01", "$1,000,000,000,000.01", REFUSED),
    ("transactions", "quantity", "2", 2.0, 2.0),
    ("transactions", "quantity", "", None, MISSING),
    ("transactions", "quantity", "2e9", 2e9, REFUSED),
    ("transactions", "quantity", "-inf", -math.inf, REFUSED),
    ("transactions", "quantity", "1,200", 1200.0, 1200.0),
    ("transactions", "order_id", " o1 ", " o1 ", "o1"),
    ("transactions", "order_id", "", "", MISSING),
    ("transactions", "order_id", "  ", "  ", MISSING),
    ("transactions", "order_id", "x" * 501, "x" * 501, REFUSED),
    ("transactions", "product_id", " 85123A ", " 85123A ", "85123A"),
    ("transactions", "product_id", "00042", "00042", "00042"),
    ("transactions", "product_id", "", "", MISSING),
    ("transactions", "product_id", "", None, MISSING),
    ("transactions", "product_id", "x" * 500, "x" * 500, "x" * 500),
    ("transactions", "product_id", "x" * 501, "x" * 501, REFUSED),
    ("transactions", "category", "Books", "Books", "Books"),
    ("transactions", "channel", " web ", " web ", "web"),
    ("transactions", "channel", "", None, MISSING),
    ("interactions", "timestamp", "2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z", TS("2025-01-01 10:00")),
    ("interactions", "timestamp", "2200-01-01", "2200-01-01", REFUSED),
    ("interactions", "kind", " Survey ", " Survey ", "survey"),
    ("interactions", "kind", "SUPPORT_TICKET", "SUPPORT_TICKET", "support_ticket"),
    ("interactions", "kind", " ", " ", REFUSED),
    ("interactions", "kind", "x" * 101, "x" * 101, REFUSED),
    ("interactions", "score", "4", 4.0, 4.0),
    ("interactions", "score", "", None, MISSING),
    ("interactions", "score", "2e6", 2e6, REFUSED),
    ("interactions", "score", "great", "great", REFUSED),
    ("customers", "signup_date", "2024-01-03", "2024-01-03", TS("2024-01-03")),
    ("customers", "signup_date", "2024-01-03T22:00:00-03:00", "2024-01-03T22:00:00-03:00", TS("2024-01-04 01:00")),
    ("customers", "signup_date", "", "", MISSING),
    ("customers", "signup_date", "1850-01-01", "1850-01-01", REFUSED),
    ("customers", "signup_date", "soon", "soon", REFUSED),
]
BASE = {"transactions": {"timestamp": "2025-01-01", "amount": 1.0},
        "interactions": {"timestamp": "2025-01-01", "kind": "survey"},
        "customers": {}}


def _canonical(value: Any) -> Any:
    """Missing values (None, NaN, NaT, an absent column) as one marker; numpy scalars as Python values."""
    if value is MISSING or value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    return value.item() if hasattr(value, "item") and not isinstance(value, pd.Timestamp) else value


def _from_file(tmp_path: Path, table: str, column: str, cell: str) -> Any:
    row = {"customer_id": "A", **BASE[table], column: cell}
    path = tmp_path / f"{table}.csv"
    pd.DataFrame([{k: str(v) for k, v in row.items()}]).to_csv(path, index=False)
    load = {"transactions": load_transactions, "interactions": load_interactions, "customers": load_customers}[table]
    try:
        frame, _ = load(path)
    except DataError as err:
        assert err.column == column, str(err)
        return REFUSED
    return _canonical(frame[column].iloc[0] if column in frame.columns else MISSING)


def _from_service(table: str, column: str, value: Any) -> Any:
    if column == "customer_id":
        customer = {"customer_id": value, "transactions": [BASE["transactions"]]}
    elif table == "customers":
        customer = {"customer_id": "A", "profile": {column: value}}
    else:
        customer = {"customer_id": "A", table: [{**BASE[table], column: value}]}
    try:
        request = CustomerIn.model_validate(customer)
    except ValidationError as err:
        assert err.errors()[0]["loc"][-1] == column, err
        return REFUSED
    tx, people, interactions = to_frames([request])
    frame = {"transactions": tx, "customers": people, "interactions": interactions}[table]
    return _canonical(frame[column].iloc[0] if frame is not None and column in frame.columns else MISSING)


@pytest.mark.parametrize(("table", "column", "cell", "value", "expected"), CASES,
                         ids=[f"{t}.{c}={cell[:30]!r}" for t, c, cell, _, _ in CASES])
def test_loader_and_service_take_and_refuse_the_same_values(tmp_path, table, column, cell, value, expected):
    assert _from_file(tmp_path, table, column, cell) == expected
    assert _from_service(table, column, value) == expected


def test_every_input_column_has_cases():
    covered = {(table, column) for table, column, *_ in CASES}
    declared = {(t.name, c.name) for t in (TRANSACTIONS, INTERACTIONS, CUSTOMERS) for c in t.columns}
    assert declared - covered <= {("interactions", "customer_id"), ("customers", "customer_id")}


def test_openapi_states_the_schemas_limits():
    schema = request_model(ServiceConfig()).model_json_schema()["$defs"]
    transaction = schema["TransactionIn"]["properties"]
    assert transaction["amount"]["maximum"] == TRANSACTIONS["amount"].bound
    assert transaction["amount"]["minimum"] == -TRANSACTIONS["amount"].bound
    assert transaction["amount"]["description"] == TRANSACTIONS["amount"].description
    assert transaction["quantity"]["anyOf"][0]["maximum"] == TRANSACTIONS["quantity"].bound
    assert transaction["order_id"]["anyOf"][0]["maxLength"] == TRANSACTIONS["order_id"].max_length
    assert transaction["product_id"]["anyOf"][0]["maxLength"] == TRANSACTIONS["product_id"].max_length
    assert "product_id" not in schema["TransactionIn"].get("required", [])
    assert schema["Customer"]["properties"]["customer_id"]["maxLength"] == TRANSACTIONS["customer_id"].max_length
    assert schema["InteractionIn"]["properties"]["kind"]["maxLength"] == INTERACTIONS["kind"].max_length
    assert schema["InteractionIn"]["required"] == ["timestamp", "kind"]


def test_the_scored_table_is_the_scorers_and_the_responses():
    assert SCORE_COLUMNS + EXTRA_COLUMNS == [c.name for c in SCORED.columns if c.required]
    prediction = PredictResponse.model_json_schema()["$defs"]["Prediction"]
    assert list(prediction["properties"]) == list(PREDICTION_FIELDS)
    assert set(PREDICTION_FIELDS) <= set(SCORED.names)
    # The band is a label in the configured language; its code column keeps the enum (low, medium, high).
    assert prediction["properties"]["churn_risk_band_code"]["enum"] == list(SCORED["churn_risk_band_code"].choices)


def test_the_request_model_bentoml_derives_validates_as_ours():
    """BentoML serves a model derived from the request model: its instants are checked in the same order."""
    from _bentoml_sdk.io_models import ensure_io_descriptor

    served = ensure_io_descriptor(request_model(ServiceConfig()))
    request = served.model_validate_json('{"as_of": "1998-07-01T02:00:00+02:00", "customers": [{"customer_id": "A"}]}')
    assert request.as_of == pd.Timestamp("1998-07-01").to_pydatetime()
    for bad in ('"1998-07-01T02"', '"1850-01-01"', "883612800"):
        with pytest.raises(ValidationError):
            served.model_validate_json(f'{{"as_of": {bad}, "customers": [{{"customer_id": "A"}}]}}')


LINES = [  # two products at the same quantity and price, exported without the product column: alike
    {"timestamp": "2025-03-09T10:00:00", "amount": 2.5, "order_id": "o1", "quantity": 1.0},
    {"timestamp": "2025-03-09T10:00:00", "amount": 2.5, "order_id": "o1", "quantity": 1.0},
    {"timestamp": "2025-03-09T10:00:00", "amount": 4.0, "order_id": "o1", "quantity": 2.0},
    {"timestamp": "2025-04-01", "amount": 7.0},
    {"timestamp": "2025-04-01", "amount": 7.0},
]


@pytest.mark.parametrize("drop", [False, True])
def test_identical_lines_follow_one_rule_in_the_loader_and_the_service(tmp_path, drop):
    path = tmp_path / "tx.csv"
    pd.DataFrame([{"customer_id": "A", **line} for line in LINES]).to_csv(path, index=False)
    from_file, report = load_transactions(path, DataConfig(drop_identical_rows=drop))
    from_service, _, _ = to_frames([CustomerIn.model_validate({"customer_id": "A", "transactions": LINES})],
                                   drop_identical_rows=drop)
    assert len(from_file) == len(from_service) == (3 if drop else 5)
    assert report.rows_read == 5 and report.rows_kept + sum(report.dropped.values()) == 5
    pd.testing.assert_frame_equal(from_file.reset_index(drop=True), from_service[from_file.columns],
                                  check_dtype=False)


def test_predict_takes_product_ids_and_keeps_identical_lines(model_server):
    """The real service, with models: lines with product ids, and identical lines without them, are scored."""
    with_products = [{**line, "product_id": f"P{i}"} for i, line in enumerate(LINES)]
    history = [{"timestamp": f"1997-0{m}-15", "amount": 20.0 + m, "order_id": f"h{m}"} for m in range(1, 7)]
    body = {"as_of": "1998-07-01", "customers": [
        {"customer_id": "with-products", "transactions": history + [
            {**line, "timestamp": "1998-03-09", "product_id": f"P{i}"} for i, line in enumerate(LINES[:3])]},
        {"customer_id": "alike-lines", "transactions": history + [
            {**line, "timestamp": "1998-03-09"} for line in LINES[:3]]},
    ]}
    answer = model_server.post("/predict", body)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["customer_id"] for p in predictions] == ["with-products", "alike-lines"]
    assert [p["source"] for p in predictions] == ["model", "model"], predictions
    too_long = {"customers": [{"customer_id": "A", "transactions": [{**with_products[0], "product_id": "x" * 501}]}]}
    refused = model_server.post("/predict", too_long)
    assert refused.status_code == 400 and "transactions[0].product_id" in refused.text
