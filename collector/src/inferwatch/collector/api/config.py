"""GET/PUT /v1/models/{model}/config: a model's settings, changeable at run time."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from inferwatch.collector.api.common import ApiError, collector, read_json
from inferwatch.collector.settings import ConfigError

MAX_BODY_BYTES = 2**20


async def get_config(request: Request) -> JSONResponse:
    model = request.path_params["model"]
    return JSONResponse({"model": model, **collector(request).settings(model).to_dict()})


async def put_config(request: Request) -> JSONResponse:
    """Change some settings (the config file's keys); the others keep their values."""
    runtime = collector(request)
    model = request.path_params["model"]
    body = await read_json(request, MAX_BODY_BYTES, "the config body")
    if not isinstance(body, dict):
        raise ApiError(400, 'the config body must be a JSON object such as {"window": "30s"}')
    try:
        config = await asyncio.to_thread(runtime.settings.update, model, body)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    return JSONResponse({"model": model, **config.to_dict()})


routes = [
    Route("/v1/models/{model}/config", get_config, methods=["GET"]),
    Route("/v1/models/{model}/config", put_config, methods=["PUT"]),
]
