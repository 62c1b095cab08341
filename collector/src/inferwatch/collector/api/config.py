"""GET/PUT /v1/models/{model}/config: a model's settings, changeable at run time."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import collector, json_body
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import refusals, request_body
from inferwatch.collector.settings import ConfigError, ModelConfig

MAX_BODY_BYTES = 2**20
_PATH = "/v1/models/{model}/config"

router = APIRouter()


@router.get(_PATH, summary="The model's effective settings.")
async def get_config(request: Request, model: str) -> bodies.ModelSettings:
    return _shown(model, collector(request).settings(model))


@router.put(
    _PATH,
    summary="Change some settings; the others keep their values.",
    responses=refusals(400, 413, 415),
    openapi_extra=request_body(bodies.ConfigChange),
)
async def put_config(
    request: Request,
    model: str,
    # Validated by the settings themselves, which name the setting and what it must be.
    body: Annotated[Any, Depends(json_body("the config body", MAX_BODY_BYTES))],
) -> bodies.ModelSettings:
    if not isinstance(body, dict):
        raise ApiError(400, 'the config body must be a JSON object such as {"window": "30s"}')
    try:
        config = await asyncio.to_thread(collector(request).settings.update, model, body)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    return _shown(model, config)


def _shown(model: str, config: ModelConfig) -> bodies.ModelSettings:
    # Validated already, by the settings: shown as they are.
    fields = {name: getattr(config, name) for name in ModelConfig.model_fields}
    return bodies.ModelSettings.model_construct(model=model, **fields)
