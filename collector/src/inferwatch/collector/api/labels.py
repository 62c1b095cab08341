"""POST /v1/labels: ground truth, joined to predictions by prediction id."""

from __future__ import annotations

import asyncio
import difflib
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import Caller, Requires, collector, json_body
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import refusals, request_body
from inferwatch.collector.labels.join import LabelsError, parse_labels
from inferwatch.collector.labels.reach import id_reach
from inferwatch.collector.runtime.collector import Collector

# 10,000 labels with long ids and string classes fit well within this.
MAX_BODY_BYTES = 16 * 2**20
# A model name is quoted in a warning up to this many characters.
MAX_NAME_SHOWN = 200

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
    # Asked before the labels are stored: their pending rows do not make the model known.
    known = await asyncio.to_thread(runtime.knows_model, model)
    reach = id_reach(runtime.settings(model), runtime.config.limits)
    outcome = await asyncio.to_thread(runtime.storage.labels.apply, model, records, now_ms, reach)
    counter = runtime.metrics.labels
    for name in ("accepted", "joined", "pending", "replaced"):
        counter.labels(name).inc(getattr(outcome, name))
    warnings = []
    if not known:
        runtime.metrics.labels_unknown_model.inc(outcome.accepted)
        warnings.append(await asyncio.to_thread(_unknown_model, runtime, caller, model))
    return bodies.LabelOutcome(
        accepted=outcome.accepted,
        joined=outcome.joined,
        pending=outcome.pending,
        replaced=outcome.replaced,
        warnings=warnings,
    )


def _unknown_model(runtime: Collector, caller: Caller, model: str) -> str:
    """The warning for labels of a model with no windows and no settings: a typo, most often."""
    # Models the caller's key may not touch are not named to it.
    visible = [m for m in runtime.known_models() if caller.may_touch(m)]
    close = difflib.get_close_matches(model, visible, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    days = runtime.config.prediction_retention_seconds / 86400
    return (
        f"model {model[:MAX_NAME_SHOWN]!r} is unknown: it has no predictions and no settings "
        f"here{hint or '.'} Its labels wait as pending for predictions of that name, for {days:g} "
        "days (prediction_retention_seconds)."
    )
