"""The default JSON mapping and the route filter."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from inferwatch.capture import count_rows
from inferwatch.middleware.mapping import (
    CapturedRequest,
    CapturedResponse,
    MappingError,
    decode_headers,
    default_inputs,
    default_outputs,
    ids_from_field,
    ids_from_header,
    rows_in_json,
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


def mapped_rows(body: bytes) -> int | None:
    """The rows the default mapping finds once it parses the body (None: it cannot map it)."""
    try:
        return count_rows(default_inputs(request(body)))
    except MappingError:
        return None


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (b'{"input_data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}', 2),
        (b'{ "x" : [ [ 1 , -2.5e-3 ] ,\n\t[ 3E+2 , 4 ] ] }', 2),
        (b"[[1, 2], [3, 4], [5, 6]]", 3),
        (b"[[true, false, null]]", 1),
        (b'{"x": [[]]}', 1),
        # Rows of named scalars, strings holding what would otherwise be structure.
        (b'{"rows": [{"a": 1, "b": "x, ]}"}, {"a": 2, "b": "[{:"}]}', 2),
        (b'[{"age": 41, "plan": "pro"}, {"age": 35, "plan": "free"}]', 2),
        (b'[{"age": 41, "plan": "pro"}, {"plan": "free", "age": 35}]', None),  # not alike
        (b'{"weird \\u00e9 [key": [[1]]}', None),  # an escape: not counted
        (b'{"x": ["a", "b"]}', None),  # a vector of strings is one row
        (b"[1.0, 2.0]", None),
        (b"[]", None),
        (b'{"x": []}', None),
        (b'{"x": [[1], [2, 3]]}', None),  # ragged
        (b'{"x": [[[1, 2]], [[3, 4]]]}', None),  # nested
        (b'{"x": [{"a": [1]}]}', None),
        (b'{"x": [[1], 2]}', None),
        (b'{"a": [1, 2], "b": [3, 4]}', None),  # columns
        (b'{"x": [[1, 2]], "y": [[3, 4]]}', None),
        (b'{"x": {"a": 1}}', None),
        (b'{"a": 1.0, "b": "x"}', None),
        (b'{"input_data": [[1', None),
        (b'{"input_data": [[1, 2]]}}', None),
        (b'"[[1]]"', None),
        (b"hello model", None),
    ],
)
def test_rows_in_json_counts_batches_of_flat_rows(body: bytes, rows: int | None) -> None:
    assert rows_in_json(body) == rows
    if rows is not None:
        assert mapped_rows(body) == rows


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["list", "list", "dict", "number", "string", "literal"])
    if depth >= 3 or kind == "number":
        return rng.choice([rng.randint(-5, 5), rng.uniform(-1e3, 1e3), 1e-7])
    if kind == "string":
        return "".join(rng.choice('ab[]{},:" é\\') for _ in range(rng.randint(0, 4)))
    if kind == "literal":
        return rng.choice([True, False, None])
    size = rng.randint(0, 4)
    if kind == "dict":
        return {f"k{i}{rng.choice('[],')}": random_json(rng, depth + 1) for i in range(size)}
    # Lists of rows of one shape, so that some are counted.
    row = random_json(rng, depth + 1)
    if rng.random() < 0.5:
        return [row] * size
    return [random_json(rng, depth + 1) for _ in range(size)]


def test_rows_in_json_never_disagrees_with_the_parsed_body() -> None:
    rng = random.Random(20240607)
    counted = 0
    for _ in range(4000):
        payload = random_json(rng)
        if rng.random() < 0.5:
            payload = {"input_data": payload}
        body = json.dumps(payload, indent=rng.choice([None, 1]), ensure_ascii=False).encode()
        rows = rows_in_json(body)
        if rows is not None:
            counted += 1
            assert rows == mapped_rows(body), body
    assert counted > 100  # the property was exercised, not vacuously true


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
