"""Reference uploads in parts, and the stored reference summary."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from starlette.requests import Request

from inferwatch.collector.api import bodies
from inferwatch.collector.api.common import (
    MAX_INTEGER,
    collector,
    content_type,
    json_body,
    needs,
    read_body,
    validated,
)
from inferwatch.collector.api.errors import ApiError
from inferwatch.collector.api.openapi import refusals, request_body
from inferwatch.collector.codec import json_safe
from inferwatch.collector.reference.store import UploadRecord
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import FrameError, decode_frame

MAX_PART_BYTES = 64 * 2**20
MAX_UPLOAD_BODY_BYTES = 2**16

router = APIRouter()
_BASE = "/v1/models/{model}/versions/{version}/reference"
PartNumber = Annotated[int, Path(ge=0, le=MAX_INTEGER, description="0, 1, ...")]


@router.post(
    f"{_BASE}/uploads",
    summary="Start a reference upload.",
    status_code=201,
    responses=refusals(400, 413, 415),
    openapi_extra=request_body(bodies.UploadRequest, required=False),
    dependencies=needs("write"),
)
async def create_upload(
    request: Request,
    model: str,
    version: str,
    body: Annotated[
        Any, Depends(json_body("the upload body", MAX_UPLOAD_BODY_BYTES, optional=True))
    ],
) -> bodies.UploadCreated:
    runtime = collector(request)
    if not isinstance(body, dict):
        raise ApiError(400, 'the upload body must be a JSON object such as {"task": "regression"}')
    task = validated(bodies.UploadRequest, body).task
    now_ms = int(runtime.clock() * 1000)
    upload_id = await asyncio.to_thread(
        runtime.storage.references.create_upload, model, version, task, now_ms
    )
    return bodies.UploadCreated(upload_id=upload_id)


@router.put(
    f"{_BASE}/uploads/{{upload_id}}/parts/{{part}}",
    summary="Send (or replace) one part: a frame of at most 64 MiB.",
    responses=refusals(400, 404, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A frame (docs/span-contract.md) of feature, output and label columns.",
            "content": {FRAME_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    dependencies=needs("write"),
)
async def put_part(
    request: Request, model: str, version: str, upload_id: str, part: PartNumber
) -> bodies.PartStored:
    runtime = collector(request)
    upload = await _upload(request, model, version, upload_id)
    kind = content_type(request)
    if kind != FRAME_TYPE:
        raise ApiError(415, f"a part must be sent as {FRAME_TYPE}, not {kind or 'no type'}")
    data = await read_body(request, MAX_PART_BYTES, "the part")
    try:
        frame = await asyncio.to_thread(decode_frame, data)
    except FrameError as exc:
        raise ApiError(400, f"the part is not a valid frame: {exc}") from None
    await asyncio.to_thread(
        runtime.storage.references.put_part, upload.upload_id, part, frame.rows, data
    )
    return bodies.PartStored(rows=frame.rows)


@router.post(
    f"{_BASE}/uploads/{{upload_id}}/commit",
    summary="Fit the reference over all parts; it replaces the version's reference.",
    responses=refusals(400, 404),
    dependencies=needs("write"),
)
async def commit_upload(
    request: Request, model: str, version: str, upload_id: str
) -> bodies.ReferenceCommitted:
    """Fit the reference over every part (streamed) and make it the version's reference."""
    runtime = collector(request)
    upload = await _upload(request, model, version, upload_id)
    try:
        record = await asyncio.to_thread(runtime.references.commit_upload, upload)
    except (ValueError, FrameError) as exc:
        raise ApiError(400, f"the reference could not be fitted: {exc}") from None
    return bodies.ReferenceCommitted(
        model=record.model,
        version=record.version,
        rows=record.rows,
        features=record.details["features"],
    )


@router.get(
    _BASE,
    summary="The stored reference and its summary.",
    responses=refusals(404),
    dependencies=needs("read"),
)
async def get_reference(request: Request, model: str, version: str) -> bodies.Reference:
    runtime = collector(request)
    record = await asyncio.to_thread(runtime.storage.references.get, model, version)
    if record is None:
        raise ApiError(404, f"model {model!r} version {version!r} has no reference")
    profile = await asyncio.to_thread(runtime.references.profile, model, version)
    return bodies.Reference(
        model=record.model,
        version=record.version,
        source=record.source,
        rows=record.rows,
        created_at=record.created_ms,
        task=record.details.get("task"),
        features=record.details["features"],
        summary=json_safe(profile.summary.to_dict()) if profile is not None else None,
    )


async def _upload(request: Request, model: str, version: str, upload_id: str) -> UploadRecord:
    upload = await asyncio.to_thread(collector(request).storage.references.upload, upload_id)
    if upload is None or (upload.model, upload.version) != (model, version):
        raise ApiError(
            404, f"no upload {upload_id!r} for model {model!r} version {version!r} is open"
        )
    return upload
