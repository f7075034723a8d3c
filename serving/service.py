"""The BentoML prediction service: ``POST /predict`` over :func:`tiercast.serving.scorer.score_columns`.

The request is validated by :mod:`tiercast.serving.api` (400 with a message naming the field), turned into the
canonical columns and scored; the answer holds one prediction per customer in request order. The models come
from a :class:`ModelSlot` (loaded in the background; ``/readyz`` answers 200 once they are in place or the
rule fallback is); ``POST /reload`` picks up a newly promoted champion without a restart. A request the models
cannot score is answered by the rule fallback (422 only if even that fails): nothing a client sends gets a
5xx. Token, content type, size limits and ``GET /model`` are the middleware of :mod:`tiercast.serving.http`.

BentoML builds the service class itself, in each worker process: :func:`run` hands it the settings as JSON in
the environment variable ``SETTINGS_ENV_VAR``, and the multi-worker reload signal's path in
``RELOAD_SIGNAL_ENV_VAR``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import bentoml
import pandas as pd
from starlette.responses import JSONResponse, Response

from tiercast.serving.api import (
    FALLBACK_VERSION,
    CustomerIn,
    PredictResponse,
    ReloadResponse,
    request_model,
    response_json,
    response_payload,
    to_columns,
)
from tiercast.serving.config import SETTINGS_ENV_VAR, ServingSettings, settings_from_env
from tiercast.serving.http import BENTOML_REQUEST_LOGGER, ClientErrorLog, ModelCardRoute, RequestGuard, public_reason
from tiercast.serving.i18n import messages
from tiercast.serving.model_slot import RELOAD_SIGNAL_ENV_VAR, ModelSlot, ReloadSignal
from tiercast.serving.scorer import ModelBundle, score_columns
from tiercast.training.registry import configure_mlflow

log = logging.getLogger("bentoml.tiercast")

LOAD_WAIT_SECONDS = 120.0  # a request during start-up waits this long for the models, then gets the fallback

SETTINGS = settings_from_env()
PredictRequest = request_model(SETTINGS.service)
logging.getLogger(BENTOML_REQUEST_LOGGER).addFilter(ClientErrorLog())  # in each worker, which imports this module
PREDICTIONS = bentoml.metrics.Counter(name="tiercast_predictions", labelnames=["source"],
                                      documentation="customers answered, by source (model or fallback)")


@bentoml.service(name="tiercast", workers=SETTINGS.service.workers, traffic={"timeout": 300})
class Tiercast:
    """Customer tiers, value and churn predictions from the champion models (or the rule fallback)."""

    def __init__(self) -> None:
        configure_mlflow()
        self.models = ModelSlot(SETTINGS, ReloadSignal.from_env() if SETTINGS.service.workers > 1 else None)
        self.models.start(SETTINGS.service.reload_interval_seconds)
        ModelCardRoute.slot = self.models

    def __is_ready__(self) -> bool:
        return self.models.loaded.is_set()

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, customers: list[CustomerIn], as_of: datetime | None = None) -> Response:
        """Tier, segment, lifecycle stage, predicted value, churn probability, action and reasons per customer.

        One prediction per customer, in request order. Customers without a transaction before ``as_of``
        and every customer when no models are loaded get the rule fallback, with a ``fallback_reason``.
        """
        as_of = as_of or datetime.now(timezone.utc).replace(tzinfo=None)
        if not self.models.loaded.is_set():  # waited for in a thread: the event loop keeps answering probes
            if not await asyncio.to_thread(self.models.loaded.wait, LOAD_WAIT_SECONDS):
                log.warning("models still loading after %.0f s: answering with the rule fallback", LOAD_WAIT_SECONDS)
        bundle, reason = self.models.current()
        # Scored in the event loop, not handed to a thread: a worker scores one request at a time either way,
        # and the hand-over costs more than the parsing it would let overlap.
        try:
            return self._score(customers, as_of, bundle, reason)
        except Exception as err:
            log.exception("scoring failed for a request of %d customers", len(customers))
            failure = f"scoring failed: {type(err).__name__}"
        if bundle is not None:
            try:
                return self._score(customers, as_of, None, failure)
            except Exception:
                log.exception("the rule fallback failed too")
        return JSONResponse({"error": f"this request could not be scored ({failure})"}, status_code=422)

    def _score(self, customers: list[CustomerIn], as_of: datetime, bundle: ModelBundle | None,
               reason: str) -> Response:
        """The :class:`PredictResponse` JSON, written from plain values (see :func:`response_json`)."""
        tx, people, interactions = to_columns(customers, SETTINGS.personal_data_columns, SETTINGS.drop_identical_rows)
        scored = score_columns(tx, pd.Timestamp(as_of), SETTINGS.policy, SETTINGS.features, bundle, SETTINGS.fallback,
                               people, interactions, SETTINGS.horizon_days, unavailable_reason=public_reason(reason),
                               language=SETTINGS.language)
        version = bundle.version_label if bundle is not None else FALLBACK_VERSION
        payload = response_payload([c.customer_id for c in customers], scored, as_of, version, SETTINGS.policy,
                                   SETTINGS.fallback, messages(SETTINGS.language))
        for source, count in Counter(p["source"] for p in payload["predictions"]).items():
            PREDICTIONS.labels(source=source).inc(count)
        return Response(response_json(payload), media_type="application/json")

    @bentoml.api(route="/reload", output_spec=ReloadResponse)
    def reload(self) -> ReloadResponse:
        """Load the models behind the configured alias again (after a promotion), without a restart. With
        several workers, the others follow within a second. A failure is answered with what failed; its
        details (a store's SQL error, say) stay in the server log."""
        answer = self.models.reload()
        return answer.model_copy(update={"detail": public_reason(answer.detail)})


Tiercast.add_asgi_middleware(ModelCardRoute)
Tiercast.add_asgi_middleware(RequestGuard, routes=("/predict", "/reload"),
                             max_bytes=SETTINGS.service.max_request_bytes, token_env_var=SETTINGS.service.token_env_var)


def _ip_address(host: str) -> str:
    """BentoML binds IP addresses only; a host name such as ``localhost`` is resolved first."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return socket.gethostbyname(host)


def run(settings: ServingSettings, host: str | None = None, port: int | None = None) -> None:
    """Serve the prediction service until SIGINT or SIGTERM (blocking).

    The settings go to the worker processes through ``SETTINGS_ENV_VAR``; the workers run in the current
    directory, so a relative ``MLFLOW_TRACKING_URI`` (the default ``sqlite:///mlflow.db``) means the same
    store as for the other commands.
    """
    os.environ[SETTINGS_ENV_VAR] = settings.model_dump_json()
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    # This module was imported before the settings were in the environment: the worker count BentoML reads here
    # is set again from them (the workers themselves import it afresh, with the settings in place).
    Tiercast.config["workers"] = settings.service.workers
    Tiercast.inject_config()
    shared = Path(tempfile.mkdtemp(prefix="tiercast-serve-"))  # the workers' reload signal, removed at the end
    os.environ[RELOAD_SIGNAL_ENV_VAR] = str(shared / "reload")
    try:
        bentoml.serve("tiercast.serving.service:Tiercast", working_dir=os.getcwd(),
                      host=_ip_address(host or settings.service.host), port=port or settings.service.port,
                      blocking=True)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
