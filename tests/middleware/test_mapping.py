"""The default JSON mapping and the route filter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from inferwatch.middleware.mapping import (
    CapturedRequest,
    CapturedResponse,
    MappingError,
    decode_headers,
    default_inputs,
    default_outputs,
    ids_from_field,
    ids_from_header,
)
from inferwatch.middleware.routes import RouteFilter


def request(payload: Any) -> CapturedRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return CapturedRequest("POST", "/predict", [(b"content-type", b"application/json")], body)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # BentoML: one named parameter holding a batch, a row, or a scalar.
        ({"input_data": [[1, 2], [3, 4]]}, [[1, 2], [3, 4]]),
        ({"x": {"a": 1, "b": "red"}}, {"a": 1, "b": "red"}),
        ({"x": 5.5}, {"x": 5.5}),
        ({"df": {"a": [1, 2], "b": [3, 4]}}, [{"a": 1, "b": 3}, {"a": 2, "b": 4}]),
        ({"rows": [{"a": 1}, {"a": 2}]}, [{"a": 1}, {"a": 2}]),
        ({"x": {"embedding": [0.1, 0.2, 0.3]}}, {"embedding": [0.1, 0.2, 0.3]}),
        # Several scalar parameters: one row.
        ({"a": 1.0, "b": "x", "c": None}, {"a": 1.0, "b": "x", "c": None}),
        # A dict of columns.
        (
            {"a": [1, 2, 3], "b": ["x", "y", "z"]},
            [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}],
        ),
        # A bare list of rows, or a vector.
        ([[1, 2], [3, 4]], [[1, 2], [3, 4]]),
        ([{"a": 1}], [{"a": 1}]),
        ([1.0, 2.0], [1.0, 2.0]),
    ],
)
def test_default_inputs(payload: Any, expected: Any) -> None:
    assert default_inputs(request(payload)) == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"a": [1, 2], "b": 3.0}, "neither all scalars nor equal-length columns"),
        ({"a": [1, 2], "b": [1]}, "neither all scalars nor equal-length columns"),
        ({}, "no parameters"),
        ("text", "expected an object or a list"),
        (b"\x89PNG...", "body is not JSON (7 bytes, application/json)"),
    ],
)
def test_default_inputs_says_what_it_cannot_map(payload: Any, message: str) -> None:
    with pytest.raises(MappingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        default_inputs(request(payload))


def test_id_field_is_not_a_feature() -> None:
    top = request({"input_data": [[1, 2]], "ids": ["a"]})
    assert default_inputs(top, id_field="ids") == [[1, 2]]
    assert ids_from_field(top, "ids") == ["a"]

    per_row = request({"rows": [{"id": 7, "v": 1}, {"id": 8, "v": 2}]})
    assert default_inputs(per_row, id_field="id") == [{"v": 1}, {"v": 2}]
    assert ids_from_field(per_row, "id") == ["7", "8"]

    scalars = request({"id": "q-1", "a": 1.0, "b": 2.0})
    assert default_inputs(scalars, id_field="id") == {"a": 1.0, "b": 2.0}
    assert ids_from_field(scalars, "id") == ["q-1"]


def test_ids_from_field_is_none_when_absent_or_not_json() -> None:
    assert ids_from_field(request({"input_data": [[1]]}), "ids") is None
    assert ids_from_field(request(b"not json"), "ids") is None
    assert ids_from_field(request({"ids": [{"nested": 1}]}), "ids") is None


def with_headers(*headers: tuple[bytes, bytes]) -> CapturedRequest:
    return CapturedRequest("POST", "/predict", list(headers), b"{}")


def test_ids_from_header() -> None:
    assert ids_from_header(with_headers((b"x-prediction-ids", b"a, b,c")), "X-Prediction-Ids") == [
        "a",
        "b",
        "c",
    ]
    assert ids_from_header(with_headers(), "X-Prediction-Ids") is None
    # An empty id would be ambiguous: ignore the header.
    assert ids_from_header(with_headers((b"x-prediction-ids", b"a,,b")), "x-prediction-ids") is None


def test_headers_are_decoded_on_demand() -> None:
    request = with_headers((b"accept", b"a"), (b"Accept", b"b"), (b"x-n", b"1"))
    assert request.header("ACCEPT") == "a, b"
    assert request.header("missing") is None
    assert request.headers == {"accept": "a, b", "x-n": "1"}
    assert decode_headers([]) == {}


@pytest.mark.parametrize("body", [[0, 1], 0.75, {"label": "x", "score": 0.5}, [[0.1, 0.9]]])
def test_default_outputs_are_the_json_value(body: Any) -> None:
    response = CapturedResponse(200, [], json.dumps(body).encode())
    assert default_outputs(response) == body


def scope(method: str, path: str) -> dict[str, str]:
    return {"method": method, "path": path}


@pytest.mark.parametrize(
    ("method", "path", "monitored"),
    [
        ("POST", "/classify", True),
        ("POST", "/v2/models/iris/predict", True),
        ("GET", "/classify", False),
        ("POST", "/readyz", False),
        ("POST", "/prefix/healthz", False),
        ("POST", "/metrics/", False),
        ("POST", "/schema.json", False),
        ("POST", "/classify/submit", False),
        ("POST", "/classify/retry", False),
    ],
)
def test_default_routes(method: str, path: str, monitored: bool) -> None:
    assert RouteFilter().monitors(scope(method, path)) is monitored


def test_explicit_routes_match_exactly_or_by_prefix() -> None:
    routes = RouteFilter(["/predict", "/v1/models/*"])
    assert routes.monitors(scope("POST", "/predict"))
    assert routes.monitors(scope("PUT", "/v1/models/a/infer"))
    assert not routes.monitors(scope("POST", "/predict/batch"))
    assert not routes.monitors(scope("POST", "/classify"))


@pytest.mark.parametrize("routes", ["/predict", ["predict"], [3]])
def test_bad_routes_are_refused(routes: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="route"):
        RouteFilter(routes)
