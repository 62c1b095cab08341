"""Reference uploads in parts, and the stored reference summary."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from inferwatch.collector.api.common import ApiError, collector, iso, read_body, read_json
from inferwatch.collector.reference.store import UploadRecord
from inferwatch.collector.window.state import json_safe
from inferwatch.contract import TASKS
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import FrameError, decode_frame

MAX_PART_BYTES = 64 * 2**20


async def create_upload(request: Request) -> JSONResponse:
    runtime = collector(request)
    model, version = request.path_params["model"], request.path_params["version"]
    body = await read_json(request, 2**16, "the upload body", optional=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, 'the upload body must be a JSON object such as {"task": "regression"}')
    task = body.get("task")
    if task is not None and task not in TASKS:
        raise ApiError(400, f"task must be one of {', '.join(TASKS)}, got {task!r}")
    now_ms = int(runtime.clock() * 1000)
    upload_id = await asyncio.to_thread(
        runtime.storage.references.create_upload, model, version, task, now_ms
    )
    return JSONResponse({"upload_id": upload_id}, status_code=201)


async def put_part(request: Request) -> JSONResponse:
    runtime = collector(request)
    upload = await _upload(request)
    part_text = request.path_params["part"]
    if not part_text.isdigit():
        raise ApiError(400, f"the part number must be a non-negative integer, got {part_text!r}")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FRAME_TYPE:
        raise ApiError(415, f"a part must be sent as {FRAME_TYPE}, not {content_type or 'no type'}")
    data = await read_body(request, MAX_PART_BYTES, "the part")
    try:
        frame = await asyncio.to_thread(decode_frame, data)
    except FrameError as exc:
        raise ApiError(400, f"the part is not a valid frame: {exc}") from None
    await asyncio.to_thread(
        runtime.storage.references.put_part, upload.upload_id, int(part_text), frame.rows, data
    )
    return JSONResponse({"rows": frame.rows})


async def commit_upload(request: Request) -> JSONResponse:
    """Fit the reference over every part (streamed) and make it the version's reference."""
    runtime = collector(request)
    upload = await _upload(request)
    try:
        record = await asyncio.to_thread(runtime.references.commit_upload, upload)
    except (ValueError, FrameError) as exc:
        raise ApiError(400, f"the reference could not be fitted: {exc}") from None
    return JSONResponse(
        {
            "model": record.model,
            "version": record.version,
            "rows": record.rows,
            "features": record.details["features"],
        }
    )


async def get_reference(request: Request) -> JSONResponse:
    runtime = collector(request)
    model, version = request.path_params["model"], request.path_params["version"]
    record = await asyncio.to_thread(runtime.storage.references.get, model, version)
    if record is None:
        raise ApiError(404, f"model {model!r} version {version!r} has no reference")
    profile = await asyncio.to_thread(runtime.references.profile, model, version)
    return JSONResponse(
        {
            "model": record.model,
            "version": record.version,
            "source": record.source,
            "rows": record.rows,
            "created_at": iso(record.created_ms),
            "task": record.details.get("task"),
            "features": record.details["features"],
            "summary": json_safe(profile.summary.to_dict()) if profile is not None else None,
        }
    )


async def _upload(request: Request) -> UploadRecord:
    runtime = collector(request)
    upload_id = request.path_params["upload_id"]
    upload = await asyncio.to_thread(runtime.storage.references.upload, upload_id)
    model, version = request.path_params["model"], request.path_params["version"]
    if upload is None or (upload.model, upload.version) != (model, version):
        raise ApiError(
            404, f"no upload {upload_id!r} for model {model!r} version {version!r} is open"
        )
    return upload


_BASE = "/v1/models/{model}/versions/{version}/reference"
routes = [
    Route(f"{_BASE}/uploads", create_upload, methods=["POST"]),
    Route(f"{_BASE}/uploads/{{upload_id}}/parts/{{part}}", put_part, methods=["PUT"]),
    Route(f"{_BASE}/uploads/{{upload_id}}/commit", commit_upload, methods=["POST"]),
    Route(_BASE, get_reference, methods=["GET"]),
]
