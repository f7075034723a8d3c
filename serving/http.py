"""What the prediction service adds to BentoML at the HTTP level, as ASGI middleware.

:class:`RequestGuard` (on the API routes only, so BentoML's probes, metrics and OpenAPI document stay open)
checks the optional bearer token, the JSON content type and the request size, and rewrites BentoML's
validation errors into 400s whose ``error`` line names each bad field. :class:`ModelCardRoute` answers
``GET /model``. :class:`ClientErrorLog` turns BentoML's log of a client's bad request into one line, and
:func:`public_reason` keeps the text of server-side errors (SQL, paths) out of what a client is told.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import traceback
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers

from tiercast.serving.api import FALLBACK_VERSION, error_message
from tiercast.serving.model_slot import LOADING_REASON, ModelSlot

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def answer_json(send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> None:
    """Send ``body`` as a JSON response with ``status`` and the extra ``headers``."""
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


PUBLIC_REASON_CHARS = 200
# The logger BentoML reports a failed API request with ("Exception on /predict [POST]", the traceback attached).
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


def public_reason(reason: str) -> str:
    """Why the models are not in use, as a client may be told it: the first line of ``reason``, at most
    ``PUBLIC_REASON_CHARS`` long. A store error's first line says what failed ("(sqlite3.DatabaseError) file is
    not a database"); the lines after it hold the SQL statement and its parameters, which stay in the server log
    (the model slot logs the whole reason when it loads or fails to)."""
    first = reason.strip().split("\n", 1)[0].strip()
    if len(first) > PUBLIC_REASON_CHARS:
        first = first[: PUBLIC_REASON_CHARS - 1].rstrip() + "…"
    return first + (" (details in the server log)" if first != reason.strip() else "")


def _parsing_the_request(error: BaseException) -> bool:
    """Whether ``error`` was raised while BentoML parsed the request body into the API's input model: a
    client's mistake. A validation error raised anywhere else is a bug of ours, and keeps its traceback."""
    return any(frame.f_code.co_name == "from_http_request" for frame, _ in traceback.walk_tb(error.__traceback__))


class ClientErrorLog(logging.Filter):
    """One WARNING line, naming the bad fields, for a request BentoML answers 400 because its body did not
    validate, instead of BentoML's ERROR with the full traceback (about 2.6 KB a request: a log flood when
    someone sends bad requests on purpose). Field names and pydantic's messages only: the values sent are not
    logged. Every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError) and _parsing_the_request(error):
            where = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "?")
            errors = error.errors(include_input=False, include_context=False, include_url=False)
            record.msg = "bad request on %s [%s], answered 400: %s"
            record.args = (*where, error_message(errors)[:500])
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        return True


def readable_400(body: bytes) -> bytes:
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

    def __init__(self, app: App, routes: Iterable[str], max_bytes: int, token_env_var: str) -> None:
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
            await answer_json(send, 401,
                              {"error": "missing or wrong bearer token: send 'Authorization: Bearer <token>'"},
                              [("www-authenticate", "Bearer")])
            return
        media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media_type != "application/json":
            await answer_json(send, 415, {"error": f"content-type must be application/json, got '{media_type[:80]}'"})
            return
        declared = headers.get("content-length")
        if declared is not None and (not (declared.isascii() and declared.isdigit())
                                     or int(declared) > self.max_bytes):
            await answer_json(send, 413, {"error": f"request body larger than {self.max_bytes} bytes"})
            return
        body = await self._body(receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

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
            payload = readable_400(b"".join(chunks))
            kept = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
            await send({**held, "headers": [*kept, (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, replay, rewrite_400)

    async def _body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole request body, or None when the client left or the body passed the limit (answered 413)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await answer_json(send, 413, {"error": f"request body larger than {self.max_bytes} bytes"})
                return None
            if not message.get("more_body", False):
                return bytes(body)


class ModelCardRoute:
    """``GET /model``: which models answer, and the model-quality card logged with them, in plain words.

    BentoML's API routes take POST only, so this small ASGI route answers the GET before them. It reads the
    worker's model slot, which the service registers here when it starts.
    """

    slot: ModelSlot | None = None

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/model" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        bundle, reason = self.slot.current() if self.slot else (None, LOADING_REASON)
        if bundle is None:
            body = {"model_version": FALLBACK_VERSION, "source": "fallback", "detail": public_reason(reason),
                    "quality_card": None}
        else:
            body = {"model_version": bundle.version_label, "source": "model", "horizon_days": bundle.horizon_days,
                    "quality_card": bundle.quality_card}
        await answer_json(send, 200, body)
