"""The collector as an ASGI app: OTLP ingest, labels, references, queries and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from inferwatch.collector.api import config as config_routes
from inferwatch.collector.api import labels, query, references
from inferwatch.collector.api.common import ApiError, collector, error_response
from inferwatch.collector.api.openapi import openapi_schema
from inferwatch.collector.dashboard import dashboard_routes
from inferwatch.collector.receive.http import traces_endpoint
from inferwatch.collector.runtime.collector import Collector
from inferwatch.collector.settings import CollectorConfig
from inferwatch.contract import TRACES_PATH


def create_app(config: CollectorConfig, *, clock: Callable[[], float] = time.time) -> Starlette:
    """A collector app; its storage opens now, its ingest worker and window task with lifespan.

    ``clock`` (seconds since the epoch) decides when windows close; tests inject their own.
    """
    runtime = Collector.build(config, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.dispatcher.start()
        await runtime.pipeline.start()
        keeper = asyncio.create_task(runtime.keeper.run(), name="inferwatch-windows")
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await runtime.pipeline.stop()
            # Alerts are stored already; this gives queued webhooks a few seconds.
            await runtime.dispatcher.aclose()
            runtime.storage.close()

    routes = [
        Route(
            TRACES_PATH,
            traces_endpoint(
                runtime.pipeline,
                max_body_bytes=config.max_body_bytes,
                stats=runtime.receiver_stats,
            ),
            methods=["POST"],
        ),
        *labels.routes,
        *references.routes,
        *query.routes,
        *config_routes.routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *dashboard_routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BearerAuth, keys=config.api_keys)],
        exception_handlers={ApiError: _api_error},
    )
    app.state.collector = runtime
    return app


async def healthz(request: Request) -> JSONResponse:
    runtime = collector(request)
    return JSONResponse({"status": "ok", "open_windows": len(runtime.book)})


async def metrics(request: Request) -> Response:
    return Response(collector(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_schema())


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


class BearerAuth:
    """With API keys configured, /v1 requests need ``Authorization: Bearer <key>``."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...]) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protected = self.keys and scope["type"] == "http" and scope["path"].startswith("/v1/")
        if protected and not self._allowed(scope):
            response = error_response(
                401,
                "this collector needs an API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return any(hmac.compare_digest(token.strip(), key) for key in self.keys)
        return False
