"""POST /v1/labels: ground truth, joined to predictions by prediction id."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import Caller, Requires, collector, json_body
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import refusals, request_body
from inferwatch.collector.labels.join import LabelsError, parse_labels

# 10,000 labels with long ids and string classes fit well within this.
MAX_BODY_BYTES = 16 * 2**20

router = APIRouter()


@router.post(
    "/v1/labels",
    summary="Ground truth joined to predictions by prediction id.",
    responses=refusals(400, 413, 415),
    openapi_extra=request_body(bodies.LabelsRequest),
)
async def post_labels(
    caller: Annotated[Caller, Depends(Requires("write"))],
    request: Request,
    # Validated by parse_labels (the labels' own rules, 413 past the configured count).
    body: Annotated[Any, Depends(json_body("the labels request body", MAX_BODY_BYTES))],
) -> bodies.LabelOutcome:
    runtime = collector(request)
    try:
        model, records = parse_labels(body, runtime.config.max_labels_per_request)
    except LabelsError as exc:
        raise ApiError(exc.status, str(exc)) from None
    caller.check_model(model)
    now_ms = int(runtime.clock() * 1000)
    outcome = await asyncio.to_thread(runtime.storage.labels.apply, model, records, now_ms)
    counter = runtime.metrics.labels
    for name in ("accepted", "joined", "pending", "replaced"):
        counter.labels(name).inc(getattr(outcome, name))
    return bodies.LabelOutcome(
        accepted=outcome.accepted,
        joined=outcome.joined,
        pending=outcome.pending,
        replaced=outcome.replaced,
    )
