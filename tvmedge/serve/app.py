"""``create_app``: the REST model service as a FastAPI (ASGI) application.

Routes (OpenAPI schema at ``/openapi.json``)::

    GET  /healthz                     liveness; the only route that needs no token
    GET  /metrics                     Prometheus text (requests, latencies, loaded models, RSS)
    GET  /v1/models                   every model: available / loading / ready / draining, with its specs
    POST /v1/models/{name}/load       verify the manifest and hashes, then load (idempotent)
    POST /v1/models/{name}/unload     stop admitting, wait for admitted requests, free; reports RSS before/after
    POST /v1/models/{name}/infer      JSON, .npy or .npz body (see tvmedge.serve.codec); JSON, .npy or .npz back
    POST /v1/models/{name}/generate   LM artifacts: {"prompt", "max_tokens", "temperature", "top_k", "top_p",
                                      "seed", "stop"} -> server-sent events, one ``token`` event per token
                                      ({"id", "text", "index", "elapsed_ms"}) then ``done`` (the whole result);
                                      with "stream": false one JSON result instead

Every error is JSON ``{"detail": "<one line>", "error": "<kind>"}`` with a status that says what to do: 400 bad
input (the loader's message for a wrong name/shape/dtype), 401 token, 403 outside the directory or the offline
profile, 404 no such model, 408 body not sent in time, 409 not loaded, 413 body too large, 415 content type, 422
artifact fails verification, 429 too many requests from one client, 503 loading / unloading or the service at its
request limit (with ``Retry-After``). A bug answers 500 with no traceback (it goes to
the server log).

Imports FastAPI/Starlette, numpy, ``tvmedge.runtime`` and ``tvmedge.errors`` only: never TVM's compiler.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import ArtifactError, ConfigError, InputError, ServeError, TvmedgeError
from ..runtime.lm import GeneratedToken, SamplingOptions
from .codec import JSON, NPY, NPZ, decode_inputs, encode_outputs, media_type, outputs_bytes
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .options import ServeOptions

__all__ = ["create_app"]

log = logging.getLogger("tvmedge.serve")

_INFER_DOC = {"requestBody": {"required": True, "content": {
    JSON: {"schema": {"type": "object", "required": ["inputs"],
                      "properties": {"inputs": {"type": "object", "additionalProperties": True,
                                                "description": "input name -> nested list, or {data, dtype}"}}},
           "example": {"inputs": {"input": [[[[0.0, 0.5]]]]}}},
    NPY: {"schema": {"type": "string", "format": "binary"}},
    NPZ: {"schema": {"type": "string", "format": "binary"}},
}}}
_ERRORS = {code: {"description": text} for code, text in {
    400: "bad input: the loader's message", 401: "missing or wrong token", 403: "outside the models directory or profile",
    404: "no such model", 409: "model not loaded", 413: "body too large", 415: "unsupported content type",
    422: "artifact fails verification", 503: "model loading or unloading; retry"}.items()}


def create_app(registry, options: ServeOptions) -> FastAPI:
    """The service over ``registry`` (a :class:`~tvmedge.serve.registry.ModelRegistry`).

    With ``options.offline`` the interactive docs pages (which fetch their scripts from a CDN) are off; the
    JSON schema stays at ``/openapi.json``.
    """
    docs = not options.offline
    app = FastAPI(title="tvmedge model service", version=__version__,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)
    metrics = Metrics(registry)
    app.state.registry, app.state.metrics = registry, metrics
    _add_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "models_loaded": len(registry.loaded()), "offline": options.offline}

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"models": registry.status(), "offline": options.offline}

    @app.post("/v1/models/{name}/load", responses=_ERRORS)
    def load(name: str) -> dict:
        return registry.load(name)

    @app.post("/v1/models/{name}/unload", responses=_ERRORS)
    def unload(name: str) -> dict:
        return registry.unload(name, options.drain_timeout)

    @app.post("/v1/models/{name}/infer", openapi_extra=_INFER_DOC, responses=_ERRORS)
    async def infer(name: str, request: Request,
                    input_name: str | None = Query(None, alias="input", description="input an .npy body is for")) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")

        def decode(specs):
            return decode_inputs(body, content_type, specs, input_name=input_name, limit=options.max_body)

        start = time.perf_counter()
        outputs = await run_in_threadpool(registry.infer, name, decode)
        elapsed = time.perf_counter() - start
        metrics.inference_seconds.labels(name).observe(elapsed)
        wanted = {media_type(part) for part in request.headers.get("accept", "").split(",")}
        for kind in (NPY, NPZ):
            if kind in wanted:
                return Response(outputs_bytes(outputs, kind), media_type=kind)
        return JSONResponse({"model": name, "outputs": encode_outputs(outputs), "latency_ms": elapsed * 1e3})

    @app.post("/v1/models/{name}/generate", responses=_ERRORS)
    async def generate(name: str, request: Request) -> Response:
        import json

        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as err:
            raise InputError(f"generate body is not JSON: {err}") from err
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            raise InputError('generate body must be a JSON object with a "prompt" string')
        unknown = sorted(set(body) - {"prompt", "stream", *_SAMPLING})
        if unknown:
            raise InputError(f"unknown generate field '{unknown[0]}'; known: prompt, stream, {', '.join(_SAMPLING)}")
        try:
            options = SamplingOptions(**{k: body[k] for k in _SAMPLING if k in body})
        except (ConfigError, TypeError) as err:
            raise InputError(str(err)) from err
        await run_in_threadpool(registry.check_generate, name, body["prompt"], options)  # 4xx before streaming
        events = registry.generate(name, body["prompt"], options)
        if body.get("stream", True) is False:
            result = await run_in_threadpool(lambda: [item for item in events][-1])
            return JSONResponse({"model": name, **result.to_json()})
        return StreamingResponse(_sse(events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    app.add_middleware(_Guard, token=options.token, max_body=options.max_body, metrics=metrics,
                       max_in_flight=options.max_connections, max_per_client=options.max_per_client,
                       body_timeout=options.body_timeout)
    return app


_SAMPLING = ("max_tokens", "temperature", "top_k", "top_p", "seed", "stop")


def _sse(events):
    """Server-sent events of a generation (a sync iterator: Starlette runs it in its thread pool)."""
    import json

    try:
        for item in events:
            if isinstance(item, GeneratedToken):
                data = {"id": item.id, "text": item.text, "index": item.index, "elapsed_ms": item.elapsed_ms}
                yield f"event: token\ndata: {json.dumps(data)}\n\n"
            else:
                yield f"event: done\ndata: {json.dumps(item.to_json())}\n\n"
    except TvmedgeError as err:  # after the stream started (e.g. the model was unloaded meanwhile): one event
        yield f"event: error\ndata: {json.dumps({'detail': ' '.join(str(err).split()), 'error': type(err).__name__})}\n\n"


def _error(status: int, message: str, kind: str, headers=None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(message.split("\n")), "error": kind}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TvmedgeError)
    async def known(request, err: TvmedgeError):
        if isinstance(err, ServeError):
            status = err.status
        else:
            status = {InputError: 400, ArtifactError: 422}.get(type(err), 500)
        headers = {"Retry-After": "1"} if status == 503 else None
        return _error(status, str(err), type(err).__name__, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"invalid request: {where}: {first.get('msg', 'malformed')}", "InputError")


class _Guard:
    """ASGI middleware around the routes: token, admission, body size and time limits, metrics, and no traceback
    reaches a client.

    The body is read here, up to the limit and within ``body_timeout`` seconds, before the app sees the request:
    a 413 never costs more than ``max_body`` bytes of memory, whatever Content-Length claims, and a client that
    trickles its body gets 408 instead of holding a slot. At most ``max_in_flight`` requests are admitted (503
    above), at most ``max_per_client`` from one address (429 above).
    """

    def __init__(self, app, *, token, max_body: int, metrics: Metrics, max_in_flight: int = 64,
                 max_per_client: int = 16, body_timeout: float = 30.0):
        self.app, self.max_body, self.metrics = app, max_body, metrics
        self.token = token.encode() if token else None
        self.max_in_flight, self.max_per_client, self.body_timeout = max_in_flight, max_per_client, body_timeout
        self.in_flight, self.per_client = 0, {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), {"code": None}

        async def tracked(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        client = (scope.get("client") or ("-",))[0]
        refusal = self._admit(client)
        try:
            if refusal is not None:
                return await _reply(tracked, refusal, scope, receive)
            if self.token and scope["path"] != "/healthz" and not self._authorized(scope):
                return await _reply(tracked, _error(401, "missing or wrong bearer token; send 'Authorization: Bearer <token>'",
                                                    "ServeError", {"WWW-Authenticate": "Bearer"}), scope, receive)
            try:
                body = await asyncio.wait_for(self._body(scope, receive), self.body_timeout)
            except asyncio.TimeoutError:
                return await _reply(tracked, _error(408, f"request body not received within {self.body_timeout:g} s",
                                                    "ServeError", {"Connection": "close"}), scope, receive)
            if body is None:
                return await _reply(tracked, _error(413, f"request body is larger than the limit of {self.max_body} bytes",
                                                    "ServeError"), scope, receive)
            await self.app(scope, _replay(body, receive), tracked)
        except Exception:  # a bug: log it whole, answer one line
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if status["code"] is None:
                await _reply(tracked, _error(500, "internal error (logged by the server); the request was not completed",
                                             "InternalError"), scope, receive)
        finally:
            if refusal is None:
                self._release(client)
            self._record(scope, status["code"] or 500, time.perf_counter() - start)

    def _admit(self, client: str):
        """None when the request is admitted (counted until :meth:`_release`), else the refusal to send."""
        if self.in_flight >= self.max_in_flight:
            return _error(503, f"the service is at its limit of {self.max_in_flight} requests in flight; retry shortly",
                          "ServeError", {"Retry-After": "1"})
        if self.per_client.get(client, 0) >= self.max_per_client:
            return _error(429, f"too many requests in flight from {client} (limit {self.max_per_client}); retry shortly",
                          "ServeError", {"Retry-After": "1"})
        self.in_flight += 1  # one event loop: no lock needed between the check and the count
        self.per_client[client] = self.per_client.get(client, 0) + 1
        return None

    def _release(self, client: str) -> None:
        self.in_flight -= 1
        self.per_client[client] -= 1
        if not self.per_client[client]:
            del self.per_client[client]

    def _authorized(self, scope) -> bool:
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    async def _body(self, scope, receive):
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _record(self, scope, code: int, seconds: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        name = scope.get("path_params", {}).get("name")
        self.metrics.requests.labels(endpoint, self.metrics.model_label(name), str(code)).inc()
        self.metrics.request_seconds.labels(endpoint).observe(seconds)


def _replay(body: bytes, receive):
    """A ``receive`` that hands the app the already-read body, then defers to the connection (disconnects)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send, response: Response, scope, receive) -> None:
    await response(scope, receive, send)
