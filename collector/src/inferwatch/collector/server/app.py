"""The collector as an ASGI app: OTLP ingest, labels, references, queries, metrics, dashboard.

A FastAPI app (Starlette underneath): the JSON routes are FastAPI routers with pydantic models,
from which /openapi.json is generated; OTLP ingest is receive.http's endpoint as it is, the
dashboard's assets a static mount. FastAPI's /docs and /redoc are off: they load their scripts
from a CDN, which many networks (and the dashboard's Content-Security-Policy) do not allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request

from inferwatch.collector.api import alert_actions, bodies, labels, query, references, traces
from inferwatch.collector.api import config as config_routes
from inferwatch.collector.api.common import Caller, authenticate, collector
from inferwatch.collector.api.errors import install_error_handlers
from inferwatch.collector.api.openapi import TITLE, VERSION, openapi_document
from inferwatch.collector.dashboard import dashboard_assets, index
from inferwatch.collector.runtime.collector import Collector
from inferwatch.collector.settings import CollectorConfig
from inferwatch.contract import TRACES_PATH

OPENAPI_PATH = "/openapi.json"


def create_app(config: CollectorConfig, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """A collector app; its storage opens now, its ingest worker and window task with lifespan.

    ``clock`` (seconds since the epoch) decides when windows close; tests inject their own.
    """
    runtime = Collector.build(config, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.dispatcher.start()
        await runtime.pipeline.start()
        keeper = asyncio.create_task(runtime.keeper.run(), name="inferwatch-windows")
        beats = asyncio.create_task(runtime.keeper.beat(), name="inferwatch-loop-beat")
        if runtime.push is not None:
            runtime.push.start()
        try:
            yield
        finally:
            for task in (keeper, beats):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if runtime.push is not None:
                # A last export, before storage closes.
                await asyncio.to_thread(runtime.push.stop)
            await runtime.pipeline.stop()
            # Deliveries are stored already; this gives pending ones a few seconds to be sent.
            await runtime.dispatcher.aclose()
            runtime.storage.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        lifespan=lifespan,
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
    )
    app.state.collector = runtime
    install_error_handlers(app)
    app.add_exception_handler(traces.OtlpRefusal, traces.otlp_refusal)
    app.include_router(traces.traces_router(runtime, config))
    for routes in (labels, references, query, config_routes, alert_actions):
        app.include_router(routes.router)
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="Liveness.")
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Prometheus metrics.",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        description="The Prometheus text exposition format.",
    )
    app.add_api_route(
        "/",
        index,
        methods=["GET"],
        summary="The dashboard (HTML); its assets are under /dashboard/.",
        response_class=FileResponse,
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    )
    app.router.routes.append(dashboard_assets())

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            documented = (*bodies.REQUEST_BODIES, *traces.WIRE_MESSAGES)
            keys = bool(config.access_keys)
            document = openapi_document(app, documented, api_keys=keys)
            if keys:
                document["paths"][TRACES_PATH]["post"]["responses"].update(traces.KEY_REFUSALS)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
    return app


async def healthz(request: Request) -> bodies.Health:
    runtime = collector(request)
    quarantine = runtime.pipeline.quarantine
    stall = runtime.storage.leadership.last_stall
    evaluating = runtime.keeper.evaluating
    return bodies.Health(
        status="ok",
        open_windows=len(runtime.book),
        quarantined_batches=quarantine.batches,
        oldest_quarantined_at=quarantine.oldest_ms,
        leads=runtime.keeper.leads,
        loop_stall=None
        if stall is None
        else bodies.LoopStallShown(
            at=int(stall.at * 1000), seconds=round(stall.seconds, 3), epoch=stall.epoch
        ),
        alert_deliveries=bodies.DeliveriesShown(**dataclasses.asdict(runtime.dispatcher.stats)),
        evaluating=None
        if evaluating is None
        else bodies.EvaluatingShown(
            model=evaluating.model,
            window_id=evaluating.window_id,
            since=int(evaluating.since * 1000),
            seconds=round(evaluating.seconds, 3),
        ),
    )


async def metrics(request: Request) -> Response:
    """The collector's own series for anyone; the per-model series (model, feature and check
    names, scores) only for whom the /v1 routes would show them: everyone when the collector
    has no keys, otherwise a key with the read scope, for its models (docs/metrics.md)."""
    runtime = collector(request)
    may_see: Callable[[str], bool] | None = None
    if not runtime.config.access_keys:
        may_see = Caller(None).may_touch
    elif "authorization" in request.headers:
        may_see = authenticate(request, "read").may_touch
    body = await asyncio.to_thread(runtime.metrics.render, may_see)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
