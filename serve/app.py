"""The HTTP service as one ASGI application: routing, the key, the body cap and the thin handlers.

Plain ASGI under uvicorn, without a framework: with a trivial JSON endpoint, uvicorn with a plain
ASGI app answered ~1.8x the requests/s of the same endpoint in a Starlette application on this
machine (docs/server.md), and the service needs only a few fixed routes.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import time
from dataclasses import dataclass, field

from mgpt.runtime import Generator, ModelError, SamplingError

from . import completions, schema
from .engine import Engine
from .errors import ApiError
from .metrics import Metrics

JSON = [(b"content-type", b"application/json")]
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass
class Limits:
    """What one request may ask, and how many the server takes at once."""
    max_body: int = 1 << 20  # bytes of a request body (413 beyond)
    max_n: int = 256  # choices per prompt
    max_prompts: int = 16  # prompts per completion request
    max_texts: int = 1024  # texts per score request
    max_text_length: int = 4096  # characters per scored text (a model reads at most its block size)
    queue: int = 512  # completion requests in flight at once (429 beyond)
    timeout: float = 30.0  # seconds a completion request may take (504 beyond)
    retry_after: int = 1  # seconds, told to a client refused with 429
    # new requests start together at most every this many ticks: fewer positions in flight, so
    # fewer and larger graph steps (n=1 at 64 connections: 1 -> 3,000 requests/s, 4 -> 4,600; then,
    # in-process, 4 -> 8: 112 -> 94 us of CPU a request, the names model's block being 8)
    cohort_ticks: int = 8


@dataclass
class Settings:
    models: dict[str, Generator]  # name -> model, in the order GET /v1/models lists them
    api_key: str | None = None  # when set, every /v1 and /metrics request must carry it as a bearer token
    cors_origins: list[str] = field(default_factory=list)  # browser origins allowed to call (none: CORS off)
    limits: Limits = field(default_factory=Limits)


class App:
    """The ASGI application: ``App(settings)`` under any ASGI server (mgpt-serve runs uvicorn)."""

    def __init__(self, settings: Settings):
        self.settings, self.limits = settings, settings.limits
        self.metrics = Metrics(self.in_flight)
        self.engines = {name: Engine(gen, self.metrics, settings.limits.cohort_ticks)
                        for name, gen in settings.models.items()}
        self.key = settings.api_key.encode() if settings.api_key else None
        largest_block = max(gen.block_size for gen in settings.models.values())
        self.completion_form = schema.Form.of(
            schema.completion_fields(self.limits.max_n, self.limits.max_prompts, largest_block), ("model",))
        self.plan_key = completions.plan_key(self.completion_form)
        self.score_form = schema.Form.of(schema.score_fields(self.limits.max_texts, self.limits.max_text_length),
                                         ("model", "texts"))
        self.routes = {
            ("POST", "/v1/completions"): self.completions,
            ("POST", "/v1/score"): self.score,
            ("GET", "/v1/models"): self.models,
            ("GET", "/health"): self.health,
            ("GET", "/metrics"): self.metrics_page,
            ("GET", "/openapi.json"): self.openapi,
        }
        self.open = {"/health", "/openapi.json"}  # answered without the key
        self.tasks: list[asyncio.Task] = []

    def in_flight(self) -> int:
        """Completion requests admitted and not yet answered, over every model (the queue's depth)."""
        return sum(engine.in_flight for engine in self.engines.values())

    # ------------------------------------------------------------------------- ASGI

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.lifespan(receive, send)
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        handler = self.routes.get((method, path))
        endpoint = path if handler else "other"
        origin = self.cors_origin(scope) if self.settings.cors_origins else None
        try:
            if handler is None:
                if path.startswith("/v1/models/") and method == "GET":
                    handler, endpoint = self.model, "/v1/models/{id}"
                elif method == "OPTIONS" and origin is not None:
                    return await self.preflight(send, origin)
                elif any(p == path for _, p in self.routes):
                    allowed = ", ".join(m for m, p in self.routes if p == path)
                    raise ApiError(405, f"{path} takes {allowed}, not {method}", code="method_not_allowed",
                                   headers={"allow": allowed})
                else:
                    raise ApiError(404, f"no endpoint {path[:80]!r}; see GET /openapi.json", code="not_found")
            if self.key is not None and path not in self.open:
                self.authorize(scope)
            status = await handler(scope, receive, send, origin)
        except ApiError as e:
            status = e.status
            headers = [(k.encode(), v.encode()) for k, v in e.headers.items()]
            await self.respond(send, e.status, e.body(), JSON + headers, origin)
        except Exception as e:  # a bug or a model failing: a 500 in OpenAI's shape, never a traceback to the client
            status = 500
            message = str(e) if isinstance(e, ModelError) else f"internal error ({type(e).__name__})"
            await self.respond(send, 500, ApiError(500, message).body(), JSON, origin)
            if not isinstance(e, ModelError):
                raise
        self.metrics.answered(endpoint, status, time.perf_counter() - started)

    async def lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # what is alive now (modules, the models, the app) lives as long as the server:
                # left out of the garbage collector's scans, which otherwise walk all of it at
                # each full collection (n=1 at 64 connections: 9% less CPU a request; n=20 at
                # 256: 12-30% less); collected first, so no garbage is kept for good
                gc.collect()
                gc.freeze()
                self.tasks = [asyncio.create_task(engine.run()) for engine in self.engines.values()]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self.tasks:
                    task.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def authorize(self, scope) -> None:
        """401 unless the request carries the key as ``Authorization: Bearer KEY`` (compared in
        constant time)."""
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
            raise ApiError(401, "missing or wrong API key: send it as the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key", headers={"www-authenticate": "Bearer"})

    def cors_origin(self, scope) -> bytes | None:
        """The request's Origin when CORS allows it (``--cors-origin``), else None."""
        if not self.settings.cors_origins:
            return None
        for name, value in scope["headers"]:
            if name == b"origin":
                allowed = self.settings.cors_origins
                return value if "*" in allowed or value.decode("latin-1") in allowed else None
        return None

    async def preflight(self, send, origin: bytes) -> int:
        await send({"type": "http.response.start", "status": 204, "headers": [
            (b"access-control-allow-origin", origin), (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-allow-headers", b"authorization, content-type"), (b"access-control-max-age", b"600"),
            (b"vary", b"origin")]})
        await send({"type": "http.response.body", "body": b""})
        return 204

    @staticmethod
    async def respond(send, status: int, body: bytes, headers: list, origin: bytes | None = None) -> int:
        if origin is not None:
            headers = headers + [(b"access-control-allow-origin", origin), (b"vary", b"origin")]
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return status

    async def read_json(self, scope, receive) -> dict:
        """The request's JSON object: 413 past the body cap (told by Content-Length or counted), 400
        if it is not a JSON object."""
        cap = self.limits.max_body
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > cap:
                raise ApiError(413, f"the request body is {int(value)} bytes; the limit is {cap}", code="too_large")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(499, "the client went away", code="client_closed")  # answered to no one
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > cap:
                raise ApiError(413, f"the request body is over the limit of {cap} bytes", code="too_large")
            if not message.get("more_body"):
                break
        return schema.parse(b"".join(chunks))

    def engine(self, name) -> Engine:
        engine = self.engines.get(name)
        if engine is None:
            raise ApiError(404, f"no model {name[:80]!r}; this server has {', '.join(self.engines)} (GET /v1/models)",
                           "model", "model_not_found")
        return engine

    # ------------------------------------------------------------------------- handlers

    async def completions(self, scope, receive, send, origin) -> int:
        values = schema.check(self.completion_form, await self.read_json(scope, receive))
        engine = self.engine(values["model"])
        if self.in_flight() >= self.limits.queue:
            raise ApiError(429, f"the server has {self.limits.queue} requests in flight, its limit; retry shortly",
                           code="queue_full", headers={"retry-after": str(self.limits.retry_after)})
        request, answer, work = completions.start(engine, self.completion_form, self.plan_key, values)
        try:
            if work is not None:
                return await self.whole(send, engine, request, answer, work, origin)
            engine.submit(request)
            request.guard(receive, self.limits.timeout)  # a client gone, or the time limit, fails the request
            if request.stream:
                return await self.stream(send, request, answer, origin)
            try:
                await request.done
            except TimeoutError:
                raise ApiError(504, f"the request took over {self.limits.timeout:g} s, the server's limit; "
                               "ask for fewer samples or retry", code="timeout") from None
            except ConnectionResetError:
                return 499  # nobody to answer (nginx's code for it, in the metrics only)
            used = self.count_tokens(request)
            return await self.respond(send, 200, completions.body(request, answer, used), JSON, origin)
        finally:
            request.close()

    async def whole(self, send, engine, request, answer, work, origin) -> int:
        """A request with set controls: its choices drawn by Generator.generate on a worker thread
        (rejection takes attempts in order, so it cannot share the batches); 422 when the attempt
        cap is reached first."""
        engine.in_flight += 1
        try:
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, work), self.limits.timeout)
        except TimeoutError:  # the thread ends by itself: max_attempts bounds its work
            raise ApiError(504, f"the request took over {self.limits.timeout:g} s, the server's limit; "
                           "ask for fewer samples or retry", code="timeout") from None
        except SamplingError as e:
            raise ApiError(422, str(e), "max_attempts", "attempts_exhausted") from None
        finally:
            engine.in_flight -= 1
        self.count_tokens(request)
        if request.stream:
            headers = SSE + ([(b"access-control-allow-origin", origin), (b"vary", b"origin")] if origin else [])
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in completions.whole_events(request, answer):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return 200
        return await self.respond(send, 200, completions.body(request, answer), JSON, origin)

    async def stream(self, send, request, answer, origin) -> int:
        headers = SSE + ([(b"access-control-allow-origin", origin), (b"vary", b"origin")] if origin else [])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in completions.events(request, answer):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if request.done.done() and request.done.exception() is None:
            self.count_tokens(request)
        else:  # failed mid-stream (timeout, model): an error event in OpenAI's shape, then the end
            error = request.done.exception() if request.done.done() else None
            if not isinstance(error, ConnectionResetError):
                status = 504 if isinstance(error, TimeoutError) else 500
                await send({"type": "http.response.body", "more_body": True,
                            "body": b"data: " + ApiError(status, str(error) or type(error).__name__).body() + b"\n\n"})
        await send({"type": "http.response.body", "body": b""})
        return 200

    def count_tokens(self, request) -> dict:
        used = completions.usage(request)
        self.metrics.counted(used["prompt_tokens"], used["completion_tokens"])
        return used

    async def score(self, scope, receive, send, origin) -> int:
        values = schema.check(self.score_form, await self.read_json(scope, receive))
        generator = self.engine(values["model"]).generator
        texts = values["texts"] if isinstance(values["texts"], list) else [values["texts"]]
        try:
            nll = await asyncio.get_running_loop().run_in_executor(None, generator.score, texts)
        except ValueError as e:  # a character outside the model's vocabulary
            raise ApiError(422, str(e), "texts", "invalid_value") from None
        tokens = sum(min(len(t) + 1, generator.block_size) for t in texts)
        body = {"object": "score", "model": values["model"], "nll": nll, "tokens": tokens, "texts": len(texts)}
        return await self.respond(send, 200, json.dumps(body).encode(), JSON, origin)

    def model_card(self, name: str) -> dict:
        gen = self.settings.models[name]
        info = gen.info
        return {"id": name, "object": "model", "created": 0, "owned_by": "mgpt",
                "metadata": {"vocab": "".join(info.vocab.chars), "vocab_size": info.vocab_size,
                             "block_size": info.block_size, "n_layer": info.n_layer, "n_head": info.n_head,
                             "n_embd": info.n_embd, "labels": [list(group) for group in info.vocab.labels],
                             "producer": info.producer, "training": info.training}}

    async def models(self, scope, receive, send, origin) -> int:
        body = {"object": "list", "data": [self.model_card(name) for name in self.engines]}
        return await self.respond(send, 200, json.dumps(body, ensure_ascii=False).encode(), JSON, origin)

    async def model(self, scope, receive, send, origin) -> int:
        name = scope["path"][len("/v1/models/"):]
        self.engine(name)
        return await self.respond(send, 200, json.dumps(self.model_card(name), ensure_ascii=False).encode(), JSON, origin)

    async def health(self, scope, receive, send, origin) -> int:
        body = {"status": "ok", "models": list(self.engines),
                "in_flight": self.in_flight()}
        return await self.respond(send, 200, json.dumps(body).encode(), JSON, origin)

    async def metrics_page(self, scope, receive, send, origin) -> int:
        headers = [(b"content-type", self.metrics.content_type.encode())]
        return await self.respond(send, 200, self.metrics.render(), headers, origin)

    async def openapi(self, scope, receive, send, origin) -> int:
        from .openapi import document

        body = json.dumps(document(self), ensure_ascii=False).encode()
        return await self.respond(send, 200, body, JSON, origin)
