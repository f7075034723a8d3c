"""The prediction service under faults and abuse (issue #19), over real HTTP: a client's bad request costs one
short log line, not a traceback; a broken model store is answered with what failed, its SQL kept in the server
log."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import httpx
from pydantic import ValidationError

from tiercast.serving.api import PredictRequest
from tiercast.serving.http import ClientErrorLog, public_reason

EMAIL = "jane.doe.4711@example.com"
AS_OF = "1998-07-01"


def _log_after(server, start: int, marker: str, timeout_s: float = 30.0) -> str:
    """The server's log written since ``start`` (a length of it), once it holds ``marker``: the access line comes
    after everything the request logged."""
    deadline = time.monotonic() + timeout_s
    while True:
        new = server.log()[start:]
        if marker in new or time.monotonic() > deadline:
            return new
        time.sleep(0.2)


def test_a_bad_request_is_logged_as_one_short_warning_without_a_traceback(fallback_server):
    start = len(fallback_server.log())
    body = {"customers": [{"customer_id": "C", "transactions": [{"timestamp": EMAIL, "amount": 1.0}]}]}
    response = fallback_server.post("/predict", body)
    assert response.status_code == 400
    assert "customers[0].transactions[0].timestamp" in response.json()["error"]
    new = _log_after(fallback_server, start, "status=400")
    lines = [line for line in new.splitlines() if line.strip()]
    warnings = [line for line in lines if "[WARNING]" in line]
    assert len(warnings) == 1, new
    assert "bad request on /predict [POST], answered 400: invalid request: customers[0].transactions[0].timestamp" \
        in warnings[0]
    assert "Traceback" not in new and "[ERROR]" not in new and "ValidationError" not in new
    assert len(lines) == 2 and lines[1].count("status=400") == 1  # the warning, then the access line
    assert len(warnings[0]) < 600, "one short line, not 2.6 KB"
    assert EMAIL not in new, "the values sent are not logged"


def test_not_json_is_logged_as_one_short_warning_too(fallback_server):
    start = len(fallback_server.log())
    response = httpx.post(fallback_server.url + "/predict", content=b'{"customers": [', timeout=30,
                          headers={**fallback_server.headers(), "Content-Type": "application/json"})
    assert response.status_code == 400
    new = _log_after(fallback_server, start, "status=400")
    assert "Traceback" not in new and "[ERROR]" not in new
    assert re.search(r"\[WARNING\].*bad request on /predict \[POST\], answered 400: invalid request: body: "
                     r"Invalid JSON", new)


def _corrupt(store: Path) -> None:
    """Overwrite the SQLite file with bytes that are not a database (the file stays, readable)."""
    (store / "mlflow.db").write_bytes(b"garbage where the model registry was\n" * 100)


def test_reload_on_a_broken_store_says_what_failed_without_the_sql(breakable_server, trained_store,
                                                                   customers_json):
    server = breakable_server
    body = {"as_of": AS_OF, "customers": customers_json(trained_store.transactions.head(20))}
    before = server.post("/predict", body).json()
    assert {p["source"] for p in before["predictions"]} == {"model"}

    _corrupt(Path(server.tracking_uri.removeprefix("sqlite:///")).parent)
    start = len(server.log())
    response = server.post("/reload", None)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["changed"] is False and answer["model_version"] == before["model_version"]
    detail = answer["detail"]
    assert detail.startswith("kept the models in use: models 'champion' could not be loaded")
    assert "file is not a database" in detail and detail.endswith("(details in the server log)")
    assert "SQL" not in detail.replace("sqlite3", "") and "SELECT" not in detail and "\n" not in detail
    assert len(detail) < 300
    # The details are in the server log, for whoever runs the service.
    assert "[SQL: SELECT" in _log_after(server, start, "path=/reload")
    # The models in use go on answering.
    after = server.post("/predict", body).json()
    assert after["predictions"] == before["predictions"]


def test_a_store_broken_from_the_start_is_named_briefly_wherever_a_client_reads_it(broken_store_server):
    """No models ever loaded: /reload, /model and each prediction's fallback_reason say what failed, in one
    line without the SQL; the server log has the SQL."""
    server = broken_store_server
    short = "models 'champion' could not be loaded: DatabaseError: (sqlite3.DatabaseError) file is not a database " \
            "(details in the server log)"
    reload = server.post("/reload", None)
    assert reload.status_code == 200 and reload.json()["model_version"] == "fallback"
    card = httpx.get(server.url + "/model", timeout=30).json()
    body = {"as_of": AS_OF, "customers": [{"customer_id": "C", "transactions": [{"timestamp": "1998-01-02",
                                                                                  "amount": 5.0}]}]}
    prediction = server.post("/predict", body).json()["predictions"][0]
    assert reload.json()["detail"] == card["detail"] == prediction["fallback_reason"] == short
    assert "[SQL: SELECT" in _log_after(server, 0, "path=/predict")


# ------------------------------------------------------------------------------------------ in process
def _record_of(error: BaseException) -> logging.LogRecord:
    """The record BentoML writes for a failed request (``log_exception``: "Exception on %s [%s]")."""
    return logging.LogRecord("bentoml._internal.server.http_app", logging.ERROR, __file__, 1, "Exception on %s [%s]",
                             ("/predict", "POST"), (type(error), error, error.__traceback__))


def test_only_a_request_that_did_not_parse_loses_its_traceback():
    def from_http_request() -> None:  # named as BentoML's parsing step
        PredictRequest.model_validate({"customers": [{"customer_id": 7, "profile": {"email": EMAIL}}]})

    def our_own_code() -> None:
        PredictRequest.model_validate({})

    for call, client_error in ((from_http_request, True), (our_own_code, False)):
        try:
            call()
        except ValidationError as error:
            record = _record_of(error)
        assert ClientErrorLog().filter(record) is True  # the record is kept either way, as one line or whole
        if client_error:
            assert record.levelno == logging.WARNING and record.exc_info is None
            assert record.getMessage() == ("bad request on /predict [POST], answered 400: invalid request: "
                                           "customers[0].customer_id: Input should be a valid string")
        else:
            assert record.levelno == logging.ERROR and record.exc_info is not None  # a bug of ours: traceback kept


def test_public_reason_keeps_the_first_line_and_says_there_is_more():
    assert public_reason("models 'champion' could not be loaded: MlflowException: not found") == \
        "models 'champion' could not be loaded: MlflowException: not found"
    assert public_reason("(sqlite3.DatabaseError) file is not a database\n[SQL: SELECT name FROM t]") == \
        "(sqlite3.DatabaseError) file is not a database (details in the server log)"
    long = public_reason("x" * 1000)
    assert len(long) < 250 and long.endswith("… (details in the server log)")
