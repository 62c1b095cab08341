"""Every route of a real collector answers as its served /openapi.json says.

A collector with an API key gets real data: spans through the OpenTelemetry exporter, labels, a
reference uploaded in parts, a config change and an alert that opens. Then every operation of the
document is called for its success and for each error status it documents, and each live body is
validated against the schema documented for that status and content type (OpenAPI 3.1 schemas
are JSON Schema 2020-12). The validation is stricter than JSON Schema's default: an object schema
that lists properties admits no others unless it says so, so an undocumented field fails. The
test fails when a route of the app was not exercised, so a new route cannot skip it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from fastapi.routing import iter_route_contexts
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from inferwatch import contract
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, RunningCollector, mixed_frames

KEY = "s3cret"
# Keys with one scope each: a route needing another scope answers them 403.
READER, WRITER = "reads-only", "writes-only"
MODEL = "credit"
REFERENCE = f"/v1/models/{MODEL}/versions/1/reference"
SPANS_PER_WINDOW = 12  # error_rate needs at least 10 requests
MAX_LABELS = 50
MAX_OTLP_BYTES = 2**20
# Statuses the document gives that a healthy collector cannot be made to answer from outside:
# the ingest queue refuses (429) only while its worker is busy, and 503 only when the sink fails
# otherwise than by Overloaded. tests/receive and test_api.py provoke both. Every other /v1 route
# answers 503 while its storage fails: test_storage_failures.py provokes that.
NOT_PROVOKED = {("/v1/traces", "post", 429), ("/v1/traces", "post", 503)}
NOT_PROVOKED_STATUSES = {503}
# Routes the document does not describe, and why.
UNDESCRIBED = {
    ("/openapi.json", "get"): "the document itself",
    ("/dashboard", "get"): "the dashboard's static files",
}
_DOCUMENT_URI = "urn:inferwatch:openapi"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(_date_time)


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists properties closed to others (unless it says)."""
    if isinstance(schema, dict):
        out = {key: closed(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


def absolute_refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: f"{_DOCUMENT_URI}{value}"
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else absolute_refs(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [absolute_refs(item) for item in schema]
    return schema


@dataclass
class Conformance:
    """Calls operations of ``document``, validating each answer against what it documents."""

    document: dict[str, Any]
    client: httpx.Client
    anonymous: httpx.Client
    # (path template, method, status) of every call made.
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    registry: Registry = field(init=False)

    def __post_init__(self) -> None:
        resource = Resource.from_contents(closed(self.document), default_specification=DRAFT202012)
        self.registry = Registry().with_resource(_DOCUMENT_URI, resource)

    def call(
        self,
        method: str,
        template: str,
        status: int,
        *,
        anonymous: bool = False,
        **request: Any,
    ) -> httpx.Response:
        params = {name: request.pop(name) for name in _PLACEHOLDER.findall(template)}
        url = template.format(**{k: str(v) for k, v in params.items()})
        client = self.anonymous if anonymous else self.client
        response = client.request(method, url, **request)
        assert response.status_code == status, (method, url, response.text[:500])
        self.seen.add((template, method.lower(), status))
        if (template, method.lower()) not in UNDESCRIBED:
            self._validate(method.lower(), template, response)
        return response

    def _validate(self, method: str, template: str, response: httpx.Response) -> None:
        operation = self.document["paths"][template][method]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{method} {template}: {response.status_code} undocumented"
        content = documented.get("content", {})
        media = response.headers.get("content-type", "").split(";")[0].strip()
        assert media in content, f"{method} {template}: {media} not among {sorted(content)}"
        schema = content[media].get("schema")
        if media == "application/json" and schema is not None:
            validator = jsonschema.Draft202012Validator(
                absolute_refs(closed(schema)), registry=self.registry, format_checker=FORMATS
            )
            errors = sorted(validator.iter_errors(response.json()), key=lambda e: e.path)
            assert not errors, f"{method} {template} {response.status_code}: " + "; ".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]
            )

    def operations(self) -> Iterator[tuple[str, str]]:
        for path, operations in self.document["paths"].items():
            for method in operations:
                yield path, method


@pytest.fixture
def served(make_collector) -> Iterator[tuple[RunningCollector, FakeClock, Conformance]]:
    clock = FakeClock(T0)
    collector = make_collector(
        clock,
        api_keys=[KEY],
        keys=[
            {"name": "reader", "key": READER, "scopes": ["read"]},
            {"name": "writer", "key": WRITER, "scopes": ["write"]},
        ],
        max_labels_per_request=MAX_LABELS,
        max_body_bytes=MAX_OTLP_BYTES,
        models={MODEL: {"window": 60, "allowed_lateness": 0}},
    )
    with (
        collector.client(headers={"Authorization": f"Bearer {KEY}"}) as client,
        collector.client() as anonymous,
    ):
        document = client.get("/openapi.json").json()
        yield collector, clock, Conformance(document, client, anonymous)


def reference_part(rng: np.random.Generator, rows: int) -> bytes:
    frame = Frame(
        rows,
        (
            numeric("x", rng.normal(size=(rows, 2)), names=["x0", "x1"]),
            categorical("color", rng.choice(["red", "green", "blue"], size=rows)),
            categorical("prediction", rng.choice(["no", "yes"], size=rows), role="output"),
            categorical("y", rng.choice(["no", "yes"], size=rows), role="label"),
        ),
    )
    return encode_frame(frame)


def send_window(
    collector: RunningCollector, make_sender: Any, index: int, *, failing: bool
) -> list[str]:
    """Spans of window ``index`` through the OpenTelemetry exporter; half fail when ``failing``."""
    sender = make_sender(collector.url, headers={"Authorization": f"Bearer {KEY}"})
    rng = np.random.default_rng(index)
    ids: list[str] = []
    for i in range(SPANS_PER_WINDOW):
        inputs, outputs = mixed_frames(rng, 2)
        span_ids = [f"w{index}-{i}-{j}" for j in range(2)]
        error = "TimeoutError" if failing and i % 2 == 0 else None
        start_ns = int((T0 + 60 * index + 4 * i) * 1e9)
        sender.send(MODEL, "1", start_ns, inputs, span_ids, outputs, error=error)
        ids += span_ids
    sender.flush()
    return ids


def test_every_route_answers_as_its_schema_says(served, make_sender) -> None:
    collector, clock, api = served
    model = {"model": MODEL}
    reference = {"model": MODEL, "version": "1"}

    # The service routes, and every /v1 route refusing a request without a key or its scope.
    api.call("GET", "/openapi.json", 200)
    api.call("GET", "/healthz", 200)
    api.call("GET", "/metrics", 200)
    page = api.call("GET", "/", 200, anonymous=True)
    assert "dashboard/app.js" in page.text
    script = api.anonymous.get("/dashboard/app.js")
    assert script.status_code == 200 and "Authorization" in script.text
    api.seen.add(("/dashboard", "get", 200))
    placeholders = {
        "model": MODEL,
        "version": "1",
        "upload_id": "u",
        "window_id": 1,
        "part": 0,
        "alert_id": 1,
    }
    for path, method in api.operations():
        if path.startswith("/v1/"):
            values = {k: v for k, v in placeholders.items() if "{" + k + "}" in path}
            api.call(method.upper(), path, 401, anonymous=True, **values)
            lacking = WRITER if method == "get" else READER
            headers = {"Authorization": f"Bearer {lacking}"}
            api.call(method.upper(), path, 403, headers=headers, **values)

    # A config change: one failing window is enough to open an alert.
    config = "/v1/models/{model}/config"
    api.call("GET", config, 200, **model)
    changed = api.call("PUT", config, 200, json={"alerts": {"consecutive": 1}}, **model).json()
    assert changed["model"] == MODEL and changed["alerts"]["consecutive"] == 1
    api.call("PUT", config, 400, json={"colour": 1}, **model)
    api.call("PUT", config, 415, content=b"window=1", **model)
    api.call("PUT", config, 413, json={"detectors": {"x": {"note": "a" * 2**20}}}, **model)

    # A reference uploaded in parts.
    uploads = "/v1/models/{model}/versions/{version}/reference/uploads"
    part = uploads + "/{upload_id}/parts/{part}"
    commit = uploads + "/{upload_id}/commit"
    frame = {"content-type": FRAME_TYPE}
    rng = np.random.default_rng(7)
    upload = api.call("POST", uploads, 201, json={"task": "classification"}, **reference)
    upload_id = upload.json()["upload_id"]
    for number in range(2):
        content = reference_part(rng, 500)
        api.call(
            "PUT",
            part,
            200,
            content=content,
            headers=frame,
            upload_id=upload_id,
            part=number,
            **reference,
        )
    api.call(
        "PUT",
        part,
        400,
        content=b"not a frame",
        headers=frame,
        upload_id=upload_id,
        part=2,
        **reference,
    )
    api.call(
        "PUT", part, 400, content=b"", headers=frame, upload_id=upload_id, part=2**63, **reference
    )
    api.call(
        "PUT",
        part,
        415,
        content=b"a,b",
        headers={"content-type": "text/csv"},
        upload_id=upload_id,
        part=2,
        **reference,
    )
    api.call("PUT", part, 404, content=b"", headers=frame, upload_id="nope", part=0, **reference)
    api.call(
        "PUT",
        part,
        413,
        content=bytes(64 * 2**20 + 1),
        headers=frame,
        upload_id=upload_id,
        part=2,
        **reference,
    )
    committed = api.call("POST", commit, 200, upload_id=upload_id, **reference).json()
    assert committed["rows"] == 1000
    api.call("POST", commit, 404, upload_id="nope", **reference)
    empty = api.call("POST", uploads, 201, **reference).json()["upload_id"]
    api.call("POST", commit, 400, upload_id=empty, **reference)
    api.call("POST", uploads, 400, json={"task": "ranking"}, **reference)
    api.call(
        "POST", uploads, 415, content=b"task=x", headers={"content-type": "text/plain"}, **reference
    )
    api.call("POST", uploads, 413, json={"task": "x" * 2**16}, **reference)
    stored = "/v1/models/{model}/versions/{version}/reference"
    api.call("GET", stored, 200, **reference)
    api.call("GET", stored, 404, model=MODEL, version="2")

    # Spans: a failing window that closes and opens an alert, and one still open.
    ids = send_window(collector, make_sender, 0, failing=True)
    send_window(collector, make_sender, 1, failing=False)
    windows = "/v1/models/{model}/windows"
    wait_for(
        lambda: total_rows(api.client) == 4 * SPANS_PER_WINDOW,
        what="the spans",
    )
    labels = [{"prediction_id": i, "label": "yes" if n % 3 else "no"} for n, i in enumerate(ids)]
    api.call("POST", "/v1/labels", 200, json={"model": MODEL, "labels": labels[:MAX_LABELS]})
    clock.advance_to(T0 + 61)

    def closed_window() -> dict[str, Any] | None:
        found = api.call("GET", windows, 200, **model).json()["windows"]
        first = found[0]
        return first if first["closed"] and first["evaluated_at"] else None

    evaluated = wait_for(closed_window, what="the first window evaluated")
    running = api.call("GET", windows, 200, params={"version": "1"}, **model).json()["windows"][-1]
    assert not running["closed"]
    detail = "/v1/models/{model}/windows/{window_id}"
    shown = api.call("GET", detail, 200, window_id=evaluated["id"], **model).json()
    assert shown["summary"]["performance"]["labelled"] > 0
    assert api.call("GET", detail, 200, window_id=running["id"], **model).json()["summary"]
    api.call("GET", detail, 400, window_id="abc", **model)
    api.call("GET", detail, 404, window_id=999, **model)
    api.call("GET", windows, 400, params={"start": "yesterday"}, **model)
    history = "/v1/models/{model}/versions/{version}/feature-history"
    column = api.call("GET", history, 200, params={"feature": "x0"}, **reference).json()
    assert column["windows"][0]["column"]["kind"] == "numeric"
    api.call("GET", history, 400, params={"feature": "x0", "limit": 0}, **reference)

    alerts = "/v1/models/{model}/alerts"
    opened = wait_for(
        lambda: api.call("GET", alerts, 200, params={"state": "open"}, **model).json()["alerts"],
        what="the alert",
    )
    assert opened[0]["check"] == "error_rate" and opened[0]["evidence"]
    api.call("GET", alerts, 400, params={"state": "x"}, **model)

    # What a person does with the open alert, and each refusal.
    alert_id = opened[0]["id"]
    one = "/v1/alerts/{alert_id}"
    acknowledge = one + "/acknowledge"
    silence = one + "/silence"
    text = {"content-type": "text/plain"}
    api.call("GET", one, 200, alert_id=alert_id)
    api.call("GET", one, 400, alert_id=0)
    api.call("GET", one, 404, alert_id=999)
    acked = api.call("POST", acknowledge, 200, json={"by": "dana"}, alert_id=alert_id).json()
    assert acked["acknowledged_by"] == "dana"
    api.call("POST", acknowledge, 400, json={"by": 7}, alert_id=alert_id)
    api.call("POST", acknowledge, 404, alert_id=999)
    api.call("POST", acknowledge, 413, json={"by": "x" * 5000}, alert_id=alert_id)
    api.call("POST", acknowledge, 415, content=b"by=dana", headers=text, alert_id=alert_id)
    hushed = api.call("POST", silence, 200, json={"for": "2h"}, alert_id=alert_id).json()
    assert hushed["silenced_until"] is not None
    api.call("POST", silence, 400, json={"for": "-1h"}, alert_id=alert_id)
    api.call("POST", silence, 404, json={"for": "2h"}, alert_id=999)
    api.call("POST", silence, 413, json={"until": "x" * 5000}, alert_id=alert_id)
    api.call("POST", silence, 415, content=b"for=2h", headers=text, alert_id=alert_id)
    api.call("DELETE", silence, 200, alert_id=alert_id)
    api.call("DELETE", silence, 400, alert_id=-1)
    api.call("DELETE", silence, 404, alert_id=999)
    # The clean second window closes and resolves it: a resolved alert cannot be changed.
    clock.advance_to(T0 + 121)
    wait_for(
        lambda: api.call("GET", one, 200, alert_id=alert_id).json()["state"] == "resolved",
        what="the alert resolved",
    )
    api.call("POST", acknowledge, 409, alert_id=alert_id)
    api.call("POST", silence, 409, json={"for": "2h"}, alert_id=alert_id)
    api.call("DELETE", silence, 409, alert_id=alert_id)
    metrics = api.call("GET", "/v1/models/{model}/metrics", 200, **model).json()
    assert metrics["lifetime"]["all"]["labelled"] > 0
    assert api.call("GET", "/v1/models", 200).json()["models"][0]["versions"]

    # Labels refused.
    api.call("POST", "/v1/labels", 400, json={"model": MODEL, "labels": {}})
    api.call("POST", "/v1/labels", 413, json={"model": MODEL, "labels": labels * 5})
    api.call("POST", "/v1/labels", 415, content=b"x", headers={"content-type": "text/plain"})

    # OTLP ingest directly, in both encodings (the exporter's requests were not recorded).
    traces = "/v1/traces"
    protobuf = {"content-type": "application/x-protobuf"}
    json_type = {"content-type": "application/json"}
    api.call("POST", traces, 200, content=b"", headers=protobuf)
    api.call("POST", traces, 200, content=b'{"resourceSpans": []}', headers=json_type)
    partial = api.call("POST", traces, 200, content=json.dumps(bad_span()), headers=json_type)
    assert partial.json()["partialSuccess"]["rejectedSpans"] == "1"
    api.call("POST", traces, 400, content=b"\xff\xff\xff", headers=protobuf)
    api.call("POST", traces, 400, content=b"{not json", headers=json_type)
    api.call("POST", traces, 413, content=bytes(MAX_OTLP_BYTES + 1), headers=protobuf)
    api.call("POST", traces, 415, content=b"x", headers={"content-type": "text/plain"})

    # Every operation documented was called for each status it documents, and every route of
    # the app is either documented or listed above with a reason.
    documented = {
        (path, method, int(status))
        for path, method in api.operations()
        for status in api.document["paths"][path][method]["responses"]
    }
    unprovoked = {(p, m, status) for p, m, status in documented if status in NOT_PROVOKED_STATUSES}
    assert documented - NOT_PROVOKED - unprovoked - api.seen == set()
    assert api.seen - documented == {(path, method, 200) for path, method in UNDESCRIBED}
    routes = {
        (route.path, method.lower())
        for route in iter_route_contexts(collector.app.routes)
        for method in (route.methods or {"GET"})  # a mount serves GET
        if method != "HEAD"
    }
    assert routes == {(path, method) for path, method, _ in api.seen}


def total_rows(client: httpx.Client) -> int:
    return sum(w["rows"] for w in client.get(f"/v1/models/{MODEL}/windows").json()["windows"])


def bad_span() -> dict[str, Any]:
    """An OTLP JSON request with one inferwatch span that lacks its model name."""
    attributes = [
        {"key": contract.ATTR_SCHEMA_VERSION, "value": {"intValue": str(contract.SCHEMA_VERSION)}},
        {"key": contract.ATTR_MODEL_VERSION, "value": {"stringValue": "1"}},
    ]
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": contract.SPAN_NAME,
        "startTimeUnixNano": str(int(T0 * 1e9)),
        "endTimeUnixNano": str(int(T0 * 1e9) + 1000),
        "attributes": attributes,
    }
    scope = {"scope": {"name": contract.INSTRUMENTATION_SCOPE}, "spans": [span]}
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [scope]}]}
