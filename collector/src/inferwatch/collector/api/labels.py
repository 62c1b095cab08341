"""POST /v1/labels: ground truth, joined to predictions by prediction id."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from inferwatch.collector.api.common import ApiError, collector, read_json
from inferwatch.collector.labels.join import LabelsError, parse_labels

# 10,000 labels with long ids and string classes fit well within this.
MAX_BODY_BYTES = 16 * 2**20


async def post_labels(request: Request) -> JSONResponse:
    runtime = collector(request)
    body = await read_json(request, MAX_BODY_BYTES, "the labels request body")
    try:
        model, records = parse_labels(body, runtime.config.max_labels_per_request)
    except LabelsError as exc:
        raise ApiError(exc.status, str(exc)) from None
    now_ms = int(runtime.clock() * 1000)
    outcome = await asyncio.to_thread(runtime.storage.labels.apply, model, records, now_ms)
    counter = runtime.metrics.labels
    for name in ("accepted", "joined", "pending", "replaced"):
        counter.labels(name).inc(getattr(outcome, name))
    return JSONResponse(
        {
            "accepted": outcome.accepted,
            "joined": outcome.joined,
            "pending": outcome.pending,
            "replaced": outcome.replaced,
        }
    )


routes = [Route("/v1/labels", post_labels, methods=["POST"])]
