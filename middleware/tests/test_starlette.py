"""The middleware on a Starlette app, in process (TestClient), exporting to a real OTLP receiver."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import inferwatch
from inferwatch import contract
from inferwatch.config import current_settings
from inferwatch.frame import CategoricalColumn
from inferwatch.middleware import CapturedRequest, InferwatchMiddleware
from inferwatch.middleware import stats as middleware_stats
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

STATUS_ERROR = 2  # OTLP Status.code


async def predict(request: Request) -> Response:
    payload = await request.json()
    return JSONResponse([sum(row) for row in payload["input_data"]])


async def score(request: Request) -> Response:
    payload = await request.json()
    return JSONResponse({"score": payload["a"] + payload["b"], "label": "high"})


async def records(request: Request) -> Response:
    payload = await request.json()
    return JSONResponse([row["age"] > 40 for row in payload["rows"]])


async def text(request: Request) -> Response:
    return PlainTextResponse(f"got {len(await request.body())} bytes")


async def large(request: Request) -> Response:
    await request.body()
    return JSONResponse([0.5] * int(request.query_params["n"]))


async def stream(request: Request) -> Response:
    await request.body()
    chunks = int(request.query_params["chunks"])

    async def body() -> AsyncIterator[bytes]:
        for i in range(chunks):
            yield bytes([i % 256]) * 65536

    return StreamingResponse(body(), media_type="application/octet-stream")


async def fail(request: Request) -> Response:
    await request.body()
    raise RuntimeError("the model crashed")


async def error(request: Request) -> Response:
    await request.body()
    return JSONResponse({"detail": "overloaded"}, status_code=503)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.started = True
    yield


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/score", score, methods=["POST"]),
            Route("/records", records, methods=["POST"]),
            Route("/text", text, methods=["POST"]),
            Route("/large", large, methods=["POST"]),
            Route("/stream", stream, methods=["POST"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/error", error, methods=["POST"]),
            Route("/health", health),
            Route("/readyz", health, methods=["GET", "POST"]),
            WebSocketRoute("/ws", echo_socket),
        ],
        lifespan=lifespan,
    )


class Monitored:
    """A test client for the app with the middleware added the Starlette way."""

    def __init__(self, **options: Any) -> None:
        self.app = make_app()
        self.app.add_middleware(InferwatchMiddleware, **{"model": "toy", **options})
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.client.__enter__()
        self.middleware = _find_middleware(self.app)

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def _find_middleware(app: Starlette) -> InferwatchMiddleware:
    layer: Any = app.middleware_stack
    while layer is not None:
        if isinstance(layer, InferwatchMiddleware):
            return layer
        layer = getattr(layer, "app", None)
    raise AssertionError("InferwatchMiddleware is not in the app's middleware stack")


@pytest.fixture
def monitored(sdk: Receiver) -> Iterator[type[Monitored]]:
    made: list[Monitored] = []

    class Tracked(Monitored):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            made.append(self)

    yield Tracked
    for m in made:
        m.close()


def header_ids(response: Any) -> list[str]:
    value = response.headers.get("x-prediction-ids")
    assert value, f"no X-Prediction-Ids header in {dict(response.headers)}"
    return value.split(",")


def columns(frame: Any) -> np.ndarray:
    return np.column_stack([np.asarray(v, dtype=float) for v in frame.features().values()])


def test_records_inputs_and_outputs_and_returns_ids(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored(version="3")
    rows = [[1.0, 2.0], [3.0, 4.5], [-1.0, 0.25]]
    response = m.client.post("/predict", json={"input_data": rows})

    assert response.status_code == 200
    assert response.json() == [3.0, 7.5, -0.75]
    ids = header_ids(response)
    assert len(ids) == 3 and len(set(ids)) == 3
    inferwatch.flush(10)
    span = sdk.span_with_ids(ids)
    assert span.attributes[contract.ATTR_MODEL_NAME] == "toy"
    assert span.attributes[contract.ATTR_MODEL_VERSION] == "3"
    np.testing.assert_array_equal(columns(span.inputs), np.array(rows))
    np.testing.assert_array_equal(columns(span.outputs).ravel(), [3.0, 7.5, -0.75])
    assert span.status_code != STATUS_ERROR
    assert 0 < span.end_ns - span.start_ns < 5e9
    assert m.middleware.stats.recorded == 1


def test_scalar_parameters_are_one_row_and_dict_outputs_named(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored()
    response = m.client.post("/score", json={"a": 2.0, "b": 0.5})

    assert response.json() == {"score": 2.5, "label": "high"}
    ids = header_ids(response)
    assert len(ids) == 1
    inferwatch.flush(10)
    span = sdk.span_with_ids(ids)
    features = span.inputs.features()
    assert set(features) == {"a", "b"}
    assert float(features["a"][0]) == 2.0 and float(features["b"][0]) == 0.5
    outputs = span.outputs
    assert outputs.rows == 1
    assert {"score", "label"} <= set(outputs.features())


def test_client_ids_in_the_header_are_reused(monitored: type[Monitored], sdk: Receiver) -> None:
    m = monitored()
    response = m.client.post(
        "/predict",
        json={"input_data": [[1.0, 1.0], [2.0, 2.0]]},
        headers={"X-Prediction-Ids": "order-17, order-18"},
    )

    assert header_ids(response) == ["order-17", "order-18"]
    inferwatch.flush(10)
    assert sdk.span_with_ids(["order-17", "order-18"]).attributes[contract.ATTR_ROWS] == 2


def test_client_ids_in_a_request_field_are_reused_and_not_features(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored(id_field="ids")
    response = m.client.post(
        "/predict", json={"input_data": [[5.0, 6.0], [7.0, 8.0]], "ids": ["r-1", "r-2"]}
    )

    assert response.json() == [11.0, 15.0]
    assert header_ids(response) == ["r-1", "r-2"]
    inferwatch.flush(10)
    span = sdk.span_with_ids(["r-1", "r-2"])
    np.testing.assert_array_equal(columns(span.inputs), [[5.0, 6.0], [7.0, 8.0]])


def test_wrong_number_of_client_ids_gets_fresh_ids(monitored: type[Monitored]) -> None:
    m = monitored()
    response = m.client.post(
        "/predict", json={"input_data": [[1.0], [2.0]]}, headers={"X-Prediction-Ids": "only-one"}
    )

    ids = header_ids(response)
    assert len(ids) == 2 and "only-one" not in ids


def test_ids_that_do_not_fit_a_header_are_still_recorded(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored(id_field="ids")
    big = m.client.post("/predict", json={"input_data": [[1.0]] * 300})
    assert big.json() == [1.0] * 300
    assert "x-prediction-ids" not in big.headers  # 300 ids: over 8 KiB
    unsafe = ["заказ-1", "séance-1", "a\r\nSet-Cookie: x=1", "with,comma"]
    for ident in unsafe:
        response = m.client.post("/predict", json={"input_data": [[3.0]], "ids": [ident]})
        assert response.status_code == 200 and response.json() == [3.0]
        assert "x-prediction-ids" not in response.headers
        assert "set-cookie" not in response.headers

    assert m.middleware.stats.ids_header_skipped == 1 + len(unsafe)
    assert m.middleware.stats.recorded == 1 + len(unsafe)
    inferwatch.flush(10)
    for ident in unsafe:
        assert sdk.span_with_ids([ident]).attributes[contract.ATTR_ROWS] == 1
    assert sdk.wait_for_matching(lambda s: s.attributes.get(contract.ATTR_ROWS) == 300, 1)


def test_a_batch_too_large_for_the_header_gets_its_ids_after_the_response(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored()
    for rows in (221, 222):  # 221 ids take 8,176 bytes, 222 take 8,213: over 8 KiB
        response = m.client.post("/predict", json={"input_data": [[float(rows)]] * rows})
        assert response.json() == [float(rows)] * rows
        assert ("x-prediction-ids" in response.headers) is (rows == 221)

    assert m.middleware.stats.ids_header_skipped == 1
    assert m.middleware.stats.recorded == 2
    inferwatch.flush(10)
    (span,) = sdk.wait_for_matching(lambda s: s.attributes.get(contract.ATTR_ROWS) == 222, 1)
    ids = span.attributes[contract.ATTR_PREDICTION_IDS]
    assert len(set(ids)) == 222 and columns(span.inputs).ravel().tolist() == [222.0] * 222


def test_default_routes_skip_get_and_infrastructure(monitored: type[Monitored]) -> None:
    m = monitored()
    assert m.client.get("/health").text == "ok"
    assert m.client.post("/readyz").text == "ok"
    assert "x-prediction-ids" not in m.client.post("/readyz").headers

    assert m.middleware.stats.requests == 0
    m.client.post("/predict", json={"input_data": [[1.0]]})
    assert m.middleware.stats.requests == 1


def test_explicit_routes_limit_what_is_monitored(monitored: type[Monitored]) -> None:
    m = monitored(routes=["/score"])
    response = m.client.post("/predict", json={"input_data": [[1.0]]})

    assert response.json() == [1.0]
    assert "x-prediction-ids" not in response.headers
    assert m.middleware.stats.requests == 0
    assert header_ids(m.client.post("/score", json={"a": 1, "b": 2}))
    assert m.middleware.stats.requests == 1


def test_request_body_over_the_cap_is_served_and_not_recorded(
    monitored: type[Monitored],
) -> None:
    m = monitored(max_body_bytes=1000)
    rows = [[float(i), float(i)] for i in range(200)]  # about 2.5 KB of JSON
    response = m.client.post("/predict", json={"input_data": rows})

    assert response.status_code == 200
    assert response.json() == [2.0 * i for i in range(200)]
    assert "x-prediction-ids" not in response.headers
    assert m.middleware.stats.request_too_large == 1
    assert m.middleware.stats.recorded == 0


def test_response_body_over_the_cap_is_served_and_not_recorded(
    monitored: type[Monitored],
) -> None:
    m = monitored(max_body_bytes=1000)
    response = m.client.post("/large?n=2000", json={"x": 1.0})

    assert response.json() == [0.5] * 2000
    # The ids depend on the request alone, so the client still gets them.
    assert len(header_ids(response)) == 1
    assert m.middleware.stats.response_too_large == 1
    assert m.middleware.stats.recorded == 0


def test_streaming_response_passes_whole_and_is_not_buffered(monitored: type[Monitored]) -> None:
    m = monitored(max_body_bytes=100_000)
    response = m.client.post("/stream?chunks=40", json={"x": 1.0})  # 2.5 MiB

    assert len(response.content) == 40 * 65536
    assert response.content[65536 * 39] == 39
    assert m.middleware.stats.response_too_large == 1


def test_failing_mapping_leaves_the_exchange_untouched(
    monitored: type[Monitored], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: CapturedRequest) -> object:
        raise KeyError("secret-feature-value")

    plain = TestClient(make_app())
    expected = plain.post("/score", json={"a": 1, "b": 2})
    m = monitored(to_inputs=broken)
    with caplog.at_level(logging.WARNING, logger="inferwatch"):
        first = m.client.post("/score", json={"a": 1, "b": 2})
        second = m.client.post("/score", json={"a": 1, "b": 2})

    for response in (first, second):
        assert response.status_code == expected.status_code
        assert response.content == expected.content
        assert "x-prediction-ids" not in response.headers
        assert response.headers["content-type"] == expected.headers["content-type"]
    assert m.middleware.stats.mapping_errors == 2
    assert m.middleware.stats.recorded == 0
    assert middleware_stats().mapping_errors >= 2  # every instance in the process, summed
    assert inferwatch.stats().monitoring_errors >= 2
    warnings = [r.getMessage() for r in caplog.records if "inferwatch middleware" in r.msg]
    assert len(warnings) == 1, "a repeated problem is logged once, then only counted"
    assert "KeyError" in warnings[0]
    assert "secret-feature-value" not in warnings[0]


def test_failing_output_mapping_still_returns_the_response(monitored: type[Monitored]) -> None:
    def broken(response: object) -> object:
        raise ValueError("cannot map")

    m = monitored(to_outputs=broken)
    response = m.client.post("/predict", json={"input_data": [[1.0, 2.0]]})

    assert response.json() == [3.0]
    assert len(header_ids(response)) == 1
    assert m.middleware.stats.mapping_errors == 1
    assert m.middleware.stats.recorded == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"hello model", "text/plain"), (b'{"input_data": [[1', "application/json")],
)
def test_non_json_request_is_served_and_counted(
    monitored: type[Monitored], body: bytes, content_type: str
) -> None:
    m = monitored(routes=["/text"])
    response = m.client.post("/text", content=body, headers={"content-type": content_type})

    assert response.text == f"got {len(body)} bytes"
    assert "x-prediction-ids" not in response.headers
    assert m.middleware.stats.mapping_errors == 1


def test_a_batch_of_rows_gets_its_ids_from_its_counted_rows(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored()
    rows = [{"age": 41, "plan": "pro"}, {"age": 35, "plan": "free, [x]"}, {"age": 50, "plan": ""}]
    response = m.client.post("/records", json={"rows": rows})

    assert response.json() == [True, False, True]
    ids = header_ids(response)
    assert len(ids) == 3
    inferwatch.flush(10)
    features = sdk.span_with_ids(ids).inputs.features()
    ages, plans = features["age"], features["plan"]
    assert isinstance(ages, np.ndarray) and isinstance(plans, CategoricalColumn)
    assert ages.tolist() == [41.0, 35.0, 50.0]
    assert plans.values() == ["pro", "free, [x]", ""]


def test_a_body_counted_as_rows_but_not_json_is_parsed_after_the_response(
    monitored: type[Monitored],
) -> None:
    """Its rows are counted from its brackets alone, so a 2xx answer to it carries ids; it is
    then not recorded. An error status makes the middleware parse the body first."""
    m = monitored(routes=["/text", "/error"])
    body = b"[[1, 2], [tru, e]]"
    accepted = m.client.post("/text", content=body)
    refused = m.client.post("/error", content=body)

    assert accepted.text == f"got {len(body)} bytes"
    assert len(header_ids(accepted)) == 2
    assert refused.status_code == 503
    assert "x-prediction-ids" not in refused.headers
    assert m.middleware.stats.mapping_errors == 2
    assert m.middleware.stats.recorded == 0


def test_user_mapping_for_other_formats(monitored: type[Monitored], sdk: Receiver) -> None:
    def to_inputs(request: CapturedRequest) -> object:
        return {"length": len(request.body), "path": request.path}

    def to_outputs(response: Any) -> object:
        return [int(response.body.split()[1])]

    m = monitored(routes=["/text"], to_inputs=to_inputs, to_outputs=to_outputs)
    response = m.client.post("/text", content=b"abcde", headers={"content-type": "text/plain"})

    assert response.text == "got 5 bytes"
    inferwatch.flush(10)
    span = sdk.span_with_ids(header_ids(response))
    features = span.inputs.features()
    assert float(features["length"][0]) == 5.0
    assert columns(span.outputs).ravel().tolist() == [5.0]


def test_exception_in_the_app_is_recorded_as_an_error_and_propagates(
    monitored: type[Monitored], sdk: Receiver
) -> None:
    m = monitored()
    response = m.client.post("/fail", json={"x": 1.0}, headers={"X-Prediction-Ids": "crash-1"})

    assert response.status_code == 500  # Starlette's ServerErrorMiddleware saw the exception
    inferwatch.flush(10)
    assert sdk.span_with_ids(["crash-1"]).status_code == STATUS_ERROR


def test_error_status_is_recorded_as_an_error(monitored: type[Monitored], sdk: Receiver) -> None:
    m = monitored()
    response = m.client.post("/error", json={"x": 1.0}, headers={"X-Prediction-Ids": "busy-1"})

    assert response.status_code == 503
    assert response.json() == {"detail": "overloaded"}
    inferwatch.flush(10)
    assert sdk.span_with_ids(["busy-1"]).status_code == STATUS_ERROR


def test_lifespan_and_websockets_pass_through(monitored: type[Monitored]) -> None:
    m = monitored(routes=["/*"])

    assert m.app.state.started is True
    with m.client.websocket_connect("/ws") as socket:
        socket.send_text("ping")
        assert socket.receive_text() == "ping"
    assert m.middleware.stats.requests == 0


def test_bad_options_are_refused_when_the_app_is_built() -> None:
    for options, message in [
        ({"model": ""}, "model must be a non-empty string"),
        ({"model": "m", "max_body_bytes": -1}, "max_body_bytes must be >= 0"),
        ({"model": "m", "task": "ranking"}, "task must be one of"),
        ({"model": "m", "endpoint": "collector:4318"}, "endpoint must be an http"),
        ({"model": "m", "to_inputs": "input_data"}, "to_inputs must be callable"),
        ({"model": "m", "routes": "/predict"}, "routes must be a list of paths"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            InferwatchMiddleware(make_app(), **options)


def test_setup_is_lazy(receiver: Receiver) -> None:
    """Building the middleware starts nothing; the first monitored request initialises the SDK
    (endpoint=...) in this process."""
    inferwatch.shutdown()  # whatever ran before, start from a process without the SDK
    before = set(threading.enumerate())
    app = make_app()
    app.add_middleware(InferwatchMiddleware, model="lazy", endpoint=receiver.url)
    with TestClient(app) as client:  # builds the middleware
        client.get("/health")
        assert not inferwatch.is_initialized()
        started = {t.name for t in set(threading.enumerate()) - before}
        assert not [name for name in started if "inferwatch" in name], started
        response = client.post("/predict", json={"input_data": [[1.0, 2.0]]})
        assert inferwatch.is_initialized()
    try:
        settings = current_settings()
        assert settings is not None and settings.endpoint == receiver.url
        inferwatch.flush(10)
        span = receiver.span_with_ids(header_ids(response))
        assert span.attributes[contract.ATTR_MODEL_NAME] == "lazy"
    finally:
        inferwatch.shutdown()
