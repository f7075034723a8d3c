"""The BentoML prediction service: a thin HTTP layer over :func:`tiercast.serving.scorer.score_columns`.

``POST /predict`` validates the request (:mod:`tiercast.serving.api`), turns it into the canonical columns, calls
the one scorer and answers one prediction per customer in request order. The champion models are loaded
from the registry by alias in the background at start-up (``/readyz`` answers 200 once they are loaded
or the rule fallback is in place); ``POST /reload`` picks up a newly promoted champion without a
restart. Nothing a client sends gets a 5xx: validation errors are 400 with a message naming the field,
and a request the models cannot score is answered by the rule fallback (422 only if even that fails).

:class:`RequestGuard` (ASGI middleware on the API routes only, so BentoML's probes, metrics and OpenAPI
document stay open) checks the optional bearer token, the JSON content type and the request size.

Settings travel from ``tiercast serve`` to the worker processes as JSON in the environment variable
``SETTINGS_ENV_VAR`` (BentoML builds the service class itself); :func:`run` puts them there and serves.
With several workers (``service.workers``), ``POST /reload`` reaches the one that answers it; that worker
then writes a :class:`ReloadSignal` file named in ``RELOAD_SIGNAL_ENV_VAR``, which the others poll, so that
every worker loads the new champion within ``SIGNAL_POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import ipaddress
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from tiercast.serving.api import (
    FALLBACK_VERSION,
    CustomerIn,
    PredictResponse,
    ReloadResponse,
    error_message,
    request_model,
    response_json,
    response_payload,
    to_columns,
)
from tiercast.serving.config import SETTINGS_ENV_VAR, ServingSettings
from tiercast.serving.scorer import ModelBundle, ModelsUnavailable, score_columns
from tiercast.training.registry import configure_mlflow, version_by_alias

log = logging.getLogger("bentoml.tiercast")

API_ROUTES = ("/predict", "/reload")
RELOAD_SIGNAL_ENV_VAR = "TIERCAST_RELOAD_SIGNAL"
SIGNAL_POLL_SECONDS = 0.5  # a file read per poll and worker: about 10 microseconds
LOAD_WAIT_SECONDS = 120.0  # a request during start-up waits this long for the models, then gets the fallback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def settings_from_env() -> ServingSettings:
    """The settings ``run`` handed over, or the defaults when the service is started by hand."""
    raw = os.environ.get(SETTINGS_ENV_VAR)
    return ServingSettings.model_validate_json(raw) if raw else ServingSettings()


SETTINGS = settings_from_env()
PredictRequest = request_model(SETTINGS.service)
PREDICTIONS = bentoml.metrics.Counter(name="tiercast_predictions", labelnames=["source"],
                                      documentation="customers answered, by source (model or fallback)")


# ------------------------------------------------------------------------------------------------ models
class ModelSlot:
    """The bundle the service answers with (None: the rule fallback, with the reason), swapped whole."""

    def __init__(self, settings: ServingSettings) -> None:
        self.registry = settings.registry
        self.alias = settings.service.model_alias
        self.loaded = threading.Event()
        self._state: tuple[ModelBundle | None, str] = (None, "models are still loading")
        self._refresh_lock = threading.Lock()

    def current(self) -> tuple[ModelBundle | None, str]:
        return self._state

    def _alias_versions(self) -> dict[str, str] | None:
        try:
            found = {name: version_by_alias(name, self.alias) for name in
                     (self.registry.value_model, self.registry.churn_model, self.registry.segment_model)}
        except Exception:  # an unreachable store: the full load below reports it
            return None
        if any(v is None for v in found.values()):
            return None
        return {name: str(v.version) for name, v in found.items()}

    def refresh(self) -> ReloadResponse:
        """Load the models behind the alias unless they are the ones in use; keep working models on failure."""
        with self._refresh_lock:
            bundle, _ = self._state
            try:
                if bundle is not None and self._alias_versions() == {k: str(v) for k, v in bundle.versions.items()}:
                    return ReloadResponse(model_version=bundle.version_label, changed=False,
                                          detail=f"'{self.alias}' is unchanged")
                try:
                    new = ModelBundle.load(self.registry, self.alias)
                except ModelsUnavailable as err:
                    if bundle is None:
                        self._state = (None, str(err))
                        log.warning("no models: every answer comes from the rule fallback (%s)", err)
                        return ReloadResponse(model_version=FALLBACK_VERSION, changed=False, detail=str(err))
                    log.warning("reload failed, keeping %s: %s", bundle.version_label, err)
                    return ReloadResponse(model_version=bundle.version_label, changed=False,
                                          detail=f"kept the models in use: {err}")
                self._state = (new, "")
                # Models, tables and libraries live as long as the process: moving them out of the garbage
                # collector's sight keeps its full passes (pauses of several ms, seen in the p99) short.
                # The previous freeze is lifted first so that a replaced bundle can still be collected.
                gc.unfreeze()
                gc.collect()
                gc.freeze()
                log.info("answering with %s", new.version_label)
                return ReloadResponse(model_version=new.version_label, changed=True,
                                      detail=f"loaded '{self.alias}'")
            finally:
                self.loaded.set()


class ReloadSignal:
    """A file shared by the workers of one service: a worker that reloaded writes a new token into it, and the
    others, reading it every ``SIGNAL_POLL_SECONDS``, reload when it changes. (BentoML hands ``POST /reload`` to
    one worker; checking the registry alias that often instead would cost each worker three registry queries per
    poll.)"""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_env(cls) -> "ReloadSignal | None":
        path = os.environ.get(RELOAD_SIGNAL_ENV_VAR)
        return cls(Path(path)) if path else None

    def read(self) -> str:
        try:
            return self.path.read_text()
        except OSError:  # not written yet, or the service is shutting down
            return ""

    def send(self) -> str:
        """Write a new token (through a rename, so no reader sees half of it) and return it."""
        token = uuid.uuid4().hex
        part = self.path.with_name(f"{self.path.name}.{token}")
        part.write_text(token)
        part.replace(self.path)
        return token


# -------------------------------------------------------------------------------------------- middleware
async def _answer(send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def _readable_400(body: bytes) -> bytes:
    """BentoML's validation answer with an ``error`` line that names each bad field."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or not isinstance(data.get("detail"), list):
        return body
    data["error"] = error_message(data["detail"])
    return json.dumps(data).encode()


class RequestGuard:
    """ASGI middleware for the API routes: bearer token, JSON only, body size limit, readable 400s.

    The body is read here (bounded) and replayed to the app, so a chunked upload cannot exceed the limit.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], routes: Iterable[str], max_bytes: int,
                 token_env_var: str) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self.max_bytes = max_bytes
        token = os.environ.get(token_env_var, "")
        self.token = token.encode() if token else None

    def _authorised(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token or b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.routes or scope["method"] != "POST":
            await self.app(scope, receive, send)  # other methods on the API routes get BentoML's 405
            return
        headers = Headers(scope=scope)
        if self.token is not None and not self._authorised(headers.get("authorization", "")):
            await _answer(send, 401, {"error": "missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
                          [("www-authenticate", "Bearer")])
            return
        media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media_type != "application/json":
            await _answer(send, 415, {"error": f"content-type must be application/json, got '{media_type[:80]}'"})
            return
        declared = headers.get("content-length")
        if declared is not None and (not (declared.isascii() and declared.isdigit())
                                     or int(declared) > self.max_bytes):
            await _answer(send, 413, {"error": f"request body larger than {self.max_bytes} bytes"})
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _answer(send, 413, {"error": f"request body larger than {self.max_bytes} bytes"})
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        held: Message | None = None
        chunks: list[bytes] = []

        async def rewrite_400(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 400:
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            payload = _readable_400(b"".join(chunks))
            kept = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
            await send({**held, "headers": [*kept, (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, replay, rewrite_400)


class ModelCardRoute:
    """``GET /model``: which models answer, and the model-quality card logged with them, in plain words.

    BentoML's API routes take POST only, so this small ASGI route answers the GET before them. It reads the
    worker's model slot, which the service registers here when it starts.
    """

    slot: ModelSlot | None = None

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/model" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        bundle, reason = self.slot.current() if self.slot else (None, "models are still loading")
        if bundle is None:
            body = {"model_version": FALLBACK_VERSION, "source": "fallback", "detail": reason, "quality_card": None}
        else:
            body = {"model_version": bundle.version_label, "source": "model", "horizon_days": bundle.horizon_days,
                    "quality_card": bundle.quality_card}
        await _answer(send, 200, body)


# ----------------------------------------------------------------------------------------------- service
@bentoml.service(name="tiercast", workers=SETTINGS.service.workers, traffic={"timeout": 300})
class Tiercast:
    """Customer tiers, value and churn predictions from the champion models (or the rule fallback)."""

    def __init__(self) -> None:
        self.settings = SETTINGS
        configure_mlflow()
        self.models = ModelSlot(SETTINGS)
        # Each source's counter looked up once, in the worker: a labels() call per request cost 0.1 ms.
        self.answered = {source: PREDICTIONS.labels(source=source) for source in ("model", "fallback")}
        ModelCardRoute.slot = self.models
        threading.Thread(target=self.models.refresh, name="tiercast-model-load", daemon=True).start()
        if SETTINGS.service.reload_interval_seconds:
            threading.Thread(target=self._follow_alias, args=(SETTINGS.service.reload_interval_seconds,),
                             name="tiercast-model-follow", daemon=True).start()
        self.signal = ReloadSignal.from_env() if SETTINGS.service.workers > 1 else None
        self._sent = ""  # the last token this worker wrote: its own reload, already done
        if self.signal is not None:
            threading.Thread(target=self._follow_signal, args=(self.signal, self.signal.read()),
                             name="tiercast-reload-signal", daemon=True).start()

    def _follow_alias(self, interval_seconds: float) -> None:
        """Pick up a newly promoted champion: the alias is checked (three registry lookups) every interval,
        and the models are loaded only when it points elsewhere."""
        while True:
            time.sleep(interval_seconds)
            try:
                self.models.refresh()  # logs what it loaded, or why it kept the models in use
            except Exception:  # this thread must outlive any one failure
                log.exception("checking the '%s' alias failed", self.models.alias)

    def _follow_signal(self, signal: ReloadSignal, seen: str) -> None:
        """Reload when another worker has: its token in the signal file changes."""
        while True:
            time.sleep(SIGNAL_POLL_SECONDS)
            token = signal.read()
            if token in (seen, self._sent, ""):
                continue
            seen = token
            try:
                self.models.refresh()
            except Exception:  # this thread must outlive any one failure
                log.exception("reloading after another worker did failed")

    def __is_ready__(self) -> bool:
        return self.models.loaded.is_set()

    def _score(self, customers: list[CustomerIn], as_of: datetime, bundle: ModelBundle | None,
               reason: str) -> Response:
        """The :class:`PredictResponse` JSON, written from plain values (see :func:`response_json`)."""
        s = self.settings
        tx, people, interactions = to_columns(customers, s.personal_data_columns)
        scored = score_columns(tx, pd.Timestamp(as_of), s.policy, s.features, bundle, s.fallback, people,
                               interactions, s.horizon_days, unavailable_reason=reason)
        version = bundle.version_label if bundle is not None else FALLBACK_VERSION
        payload = response_payload([c.customer_id for c in customers], scored, as_of, version, s.policy,
                                   s.fallback)
        for source, count in Counter(p["source"] for p in payload["predictions"]).items():
            self.answered[source].inc(count)
        return Response(response_json(payload), media_type="application/json")

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
        # Scored in the event loop rather than in BentoML's worker thread: requests are scored one at a time
        # either way (one thread per worker), and handing the work to a thread made it slower by more than the
        # parsing it let overlap (a handler with 4.4 ms of work answered in 8.6-9.0 ms from the thread, 7.2-8.1
        # ms inline; the floor of the benchmark is measured the same way).
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

    @bentoml.api(route="/reload", output_spec=ReloadResponse)
    def reload(self) -> ReloadResponse:
        """Load the models behind the configured alias again (after a promotion), without a restart. With
        several workers, the others follow within a second."""
        answer = self.models.refresh()
        if self.signal is not None:
            self._sent = self.signal.send()
        return answer


Tiercast.add_asgi_middleware(ModelCardRoute)
Tiercast.add_asgi_middleware(RequestGuard, routes=API_ROUTES, max_bytes=SETTINGS.service.max_request_bytes,
                             token_env_var=SETTINGS.service.token_env_var)


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
