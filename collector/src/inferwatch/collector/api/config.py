"""GET/PUT /v1/models/{model}/config: a model's settings, changeable at run time.

A PUT needs the admin scope. Settings that name code to import (a ``"module:function"`` metric)
are taken only from an admin key, and resolved and checked as they are put; without keys, a PUT
may change anything but that (docs/security.md).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import Caller, Requires, collector, json_body, needs
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import refusals, request_body
from inferwatch.collector.settings import CodeImportRefused, ConfigError, ModelConfig

MAX_BODY_BYTES = 2**20
_PATH = "/v1/models/{model}/config"

router = APIRouter()


@router.get(_PATH, summary="The model's effective settings.", dependencies=needs("read"))
async def get_config(request: Request, model: str) -> bodies.ModelSettings:
    return _shown(model, collector(request).settings(model))


@router.put(
    _PATH,
    summary="Change some settings; the others keep their values.",
    responses=refusals(400, 403, 413, 415),
    openapi_extra=request_body(bodies.ConfigChange),
)
async def put_config(
    caller: Annotated[Caller, Depends(Requires("admin"))],
    request: Request,
    model: str,
    # Validated by the settings themselves, which name the setting and what it must be.
    body: Annotated[Any, Depends(json_body("the config body", MAX_BODY_BYTES))],
) -> bodies.ModelSettings:
    if not isinstance(body, dict):
        raise ApiError(400, 'the config body must be a JSON object such as {"window": "30s"}')
    update = collector(request).settings.update
    try:
        config = await asyncio.to_thread(update, model, body, may_import=caller.may_name_code)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    except CodeImportRefused as exc:
        raise ApiError(
            403,
            f"the config names code to import (the metric {str(exc)[:80]!r}); only the config "
            "file or a key with the admin scope may name code (docs/security.md)",
        ) from None
    return _shown(model, config)


def _shown(model: str, config: ModelConfig) -> bodies.ModelSettings:
    # Validated already, by the settings: shown as they are.
    fields = {name: getattr(config, name) for name in ModelConfig.model_fields}
    return bodies.ModelSettings.model_construct(model=model, **fields)
