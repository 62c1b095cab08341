"""One alert, and what a person does with it: acknowledge it, silence it for a while.

Alert ids are the collector's own (``GET /v1/models/{model}/alerts`` lists them). Both actions
are for open alerts (409 for a resolved one) and go through the alert engine, so they never race
with a window's evaluation changing the same alert. Reading an alert needs the ``read`` scope,
acting on one ``admin`` (it changes who gets paged), and a key limited to some models reaches
only their alerts (docs/security.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from starlette.requests import Request

from inferwatch.collector.alerts.engine import AlertEngine, AlertNotFound, AlertResolved
from inferwatch.collector.alerts.model import Alert
from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import (
    MAX_INTEGER,
    Caller,
    Requires,
    collector,
    json_body,
    parse_iso,
    validated,
)
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import refusals, request_body
from inferwatch.collector.settings.durations import seconds

MAX_BODY_BYTES = 4096
# A silence longer than this is a check switched off: say so in the settings instead.
MAX_SILENCE_SECONDS = 90 * 86400

_TOO_LONG = (
    "a silence lasts at most 90 days; to stop alerting on a check for longer, leave it out of "
    "the model's alerts.checks"
)

router = APIRouter()
AlertId = Annotated[int, Path(ge=1, le=MAX_INTEGER, description="An alert's id.")]


@router.get("/v1/alerts/{alert_id}", summary="One alert.", responses=refusals(400, 404))
async def get_alert(
    request: Request, alert_id: AlertId, caller: Annotated[Caller, Depends(Requires("read"))]
) -> bodies.Alert:
    return await _acting(request, caller, alert_id, lambda engine: engine.get(alert_id))


@router.post(
    "/v1/alerts/{alert_id}/acknowledge",
    summary="Someone is on it: no more reminders; it still resolves and says so.",
    responses=refusals(400, 404, 409, 413, 415),
    openapi_extra=request_body(bodies.Acknowledgement, required=False),
)
async def acknowledge(
    request: Request,
    alert_id: AlertId,
    caller: Annotated[Caller, Depends(Requires("admin"))],
    body: Annotated[Any, Depends(json_body("the acknowledgement", MAX_BODY_BYTES, optional=True))],
) -> bodies.Alert:
    by = validated(bodies.Acknowledgement, body or {}).by
    return await _acting(request, caller, alert_id, lambda engine: engine.acknowledge(alert_id, by))


@router.post(
    "/v1/alerts/{alert_id}/silence",
    summary="No notifications about the alert until a time.",
    responses=refusals(400, 404, 409, 413, 415),
    openapi_extra=request_body(bodies.Silence),
)
async def silence(
    request: Request,
    alert_id: AlertId,
    caller: Annotated[Caller, Depends(Requires("admin"))],
    body: Annotated[Any, Depends(json_body("the silence", MAX_BODY_BYTES))],
) -> bodies.Alert:
    asked = validated(bodies.Silence, body)
    now_ms = int(collector(request).clock() * 1000)
    if (asked.for_ is None) == (asked.until is None):
        raise ApiError(400, 'give one of "for" (a duration such as "2h") or "until" (a time)')
    if asked.for_ is not None:
        try:
            lasting = seconds(asked.for_)
        except ValueError as exc:
            raise ApiError(400, f"for {exc}") from None
        # Compared before it becomes milliseconds: a huge number must not overflow.
        if lasting > MAX_SILENCE_SECONDS:
            raise ApiError(400, _TOO_LONG)
        until_ms = now_ms + int(lasting * 1000)
    else:
        parsed = parse_iso(asked.until, "until")
        if parsed is None:
            raise ApiError(400, "until must be a time such as 2026-12-01T12:00:00Z, got ''")
        until_ms = parsed
    if until_ms <= now_ms:
        raise ApiError(400, "a silence must end in the future")
    if until_ms - now_ms > MAX_SILENCE_SECONDS * 1000:
        raise ApiError(400, _TOO_LONG)
    return await _acting(
        request, caller, alert_id, lambda engine: engine.silence(alert_id, until_ms)
    )


@router.delete(
    "/v1/alerts/{alert_id}/silence",
    summary="End the alert's silence; what it held back is sent now.",
    responses=refusals(400, 404, 409),
)
async def end_silence(
    request: Request, alert_id: AlertId, caller: Annotated[Caller, Depends(Requires("admin"))]
) -> bodies.Alert:
    return await _acting(request, caller, alert_id, lambda engine: engine.silence(alert_id, None))


async def _acting(
    request: Request, caller: Caller, alert_id: int, action: Callable[[AlertEngine], Alert]
) -> bodies.Alert:
    engine = collector(request).alerts
    try:
        if caller.key is not None:
            # An alert of a model the key may not touch is refused before anything is done.
            found: Alert = await asyncio.to_thread(engine.get, alert_id)
            caller.check_model(found.model)
        alert: Alert = await asyncio.to_thread(action, engine)
    except AlertNotFound:
        raise ApiError(404, f"there is no alert {alert_id}") from None
    except AlertResolved:
        raise ApiError(
            409, f"alert {alert_id} is resolved: only open alerts can be changed"
        ) from None
    return bodies.Alert.from_record(alert)
