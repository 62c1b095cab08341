"""The middleware on real ``bentoml serve`` processes, exporting to a real OTLP receiver.

Two servers run for the whole module (started together: each takes seconds): ``plain`` with two
workers and BentoML tracing off (its default), ``traced`` with BentoML exporting its own request
spans to the same receiver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from mw_bento import FEATURES, BentoServer, start_bentoml, stop_bentoml, wait_ready
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from inferwatch import contract
from inferwatch.capture import PREDICTION, PROBA
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

pytestmark = pytest.mark.slow

STATUS_ERROR = 2  # OTLP Status.code
X, Y = load_iris(return_X_y=True)


@dataclass
class Servers:
    plain: BentoServer
    traced: BentoServer


@pytest.fixture(scope="module")
def servers(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    home: Path = tmp_path_factory.mktemp("bentoml")
    plain = start_bentoml(
        home / "plain",
        {
            "IW_TEST_ENDPOINT": receiver.url,
            "IW_TEST_WORKERS": "2",
            # process.pid in the resource tells the two workers' spans apart.
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
        },
    )
    traced = start_bentoml(
        home / "traced",
        {"IW_TEST_ENDPOINT": receiver.url, "IW_TEST_TRACING": receiver.url + "/v1/traces"},
    )
    try:
        wait_ready(plain)
        wait_ready(traced)
        yield Servers(plain, traced)
    finally:
        stop_bentoml(plain)
        stop_bentoml(traced)


def post(server: BentoServer, path: str, payload: object, **headers: str) -> httpx.Response:
    response = httpx.post(server.url + path, json=payload, headers=headers, timeout=30)
    return response


def header_ids(response: httpx.Response) -> list[str]:
    value = response.headers.get("x-prediction-ids")
    assert value, f"no X-Prediction-Ids header in {dict(response.headers)}"
    return value.split(",")


def test_predictions_are_recorded_with_their_inputs_and_outputs(
    servers: Servers, receiver: Receiver
) -> None:
    rows = X[[0, 60, 120, 149]]
    response = post(servers.plain, "/classify", {"input_data": rows.tolist()})

    assert response.status_code == 200
    expected = LogisticRegression(max_iter=500).fit(X, Y).predict(rows)
    assert response.json() == expected.tolist()
    ids = header_ids(response)
    assert len(ids) == 4
    span = receiver.span_with_ids(ids)
    attributes = span.attributes
    assert attributes[contract.ATTR_MODEL_NAME] == "iris"
    assert attributes[contract.ATTR_MODEL_VERSION] == "1"
    assert attributes[contract.ATTR_TASK] == "classification"
    assert attributes[contract.ATTR_ROWS] == 4
    features = span.inputs.features()
    assert list(features) == FEATURES
    np.testing.assert_array_equal(np.column_stack(list(features.values())), rows)
    outputs = span.outputs
    values = [np.asarray(v, dtype=float) for v in outputs.features().values()]
    np.testing.assert_array_equal(np.column_stack(values).ravel(), response.json())
    assert span.status_code != STATUS_ERROR
    # Tracing is off (sample rate 0), yet the span is exported, as a child of BentoML's
    # request span, whose id BentoML returns as the request id.
    assert span.parent_span_id == response.headers["x-bentoml-request-id"]


def test_probabilities_are_recorded_as_a_block(servers: Servers, receiver: Receiver) -> None:
    rows = X[[10, 70]]
    response = post(servers.plain, "/probabilities", {"input_data": rows.tolist()})

    probabilities = np.asarray(response.json())
    assert probabilities.shape == (2, 3)
    span = receiver.span_with_ids(header_ids(response))
    outputs = span.outputs.features()
    # A classifier's probabilities arrive whole, with the class they predict.
    recorded = np.column_stack([outputs[f"{PROBA}[{j}]"] for j in range(3)])
    np.testing.assert_array_equal(recorded, probabilities)
    np.testing.assert_array_equal(outputs[PREDICTION], probabilities.argmax(axis=1))


def test_scalar_parameters_are_one_row(servers: Servers, receiver: Receiver) -> None:
    row = dict(zip(FEATURES, X[100].tolist(), strict=True))
    response = post(servers.plain, "/measure", row, **{"X-Prediction-Ids": "flower-100"})

    assert response.json() == 2
    assert header_ids(response) == ["flower-100"]
    features = receiver.span_with_ids(["flower-100"]).inputs.features()
    assert {name: float(values[0]) for name, values in features.items()} == row


def test_infrastructure_routes_are_not_monitored(servers: Servers) -> None:
    for path in ("/readyz", "/livez", "/healthz", "/metrics", "/schema.json"):
        response = httpx.get(servers.plain.url + path, timeout=10)
        assert response.status_code == 200, path
        assert "x-prediction-ids" not in response.headers, path


def test_a_failing_api_keeps_its_answer_and_is_recorded_as_an_error(
    servers: Servers, receiver: Receiver
) -> None:
    response = post(
        servers.plain, "/broken", {"input_data": [[1, 2, 3, 4]]}, **{"X-Prediction-Ids": "b-1"}
    )

    assert response.status_code == 500
    assert header_ids(response) == ["b-1"]
    assert receiver.span_with_ids(["b-1"]).status_code == STATUS_ERROR


def test_each_worker_records_its_own_calls(servers: Servers, receiver: Receiver) -> None:
    # New connections, sent concurrently, so that both workers accept some.
    def call(i: int) -> tuple[int, str]:
        who = post(servers.plain, "/whoami", {})
        post(
            servers.plain,
            "/classify",
            {"input_data": [X[i].tolist()]},
            **{"X-Prediction-Ids": f"w-{i}"},
        )
        return who.json(), f"w-{i}"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(48)))

    pids = {pid for pid, _ in results}
    assert len(pids) == 2, f"expected both workers to answer, got pids {pids}"
    spans = [receiver.span_with_ids([ident]) for _, ident in results]
    assert {int(span.resource["process.pid"]) for span in spans} == pids


def test_spans_join_bentomls_trace_when_its_tracing_is_on(
    servers: Servers, receiver: Receiver
) -> None:
    response = post(
        servers.traced, "/classify", {"input_data": [X[5].tolist()]}, **{"X-Prediction-Ids": "t-1"}
    )

    assert response.status_code == 200
    span = receiver.span_with_ids(["t-1"])
    bentoml_spans = receiver.wait_for_matching(
        lambda s: s.trace_id == span.trace_id and s.name != contract.SPAN_NAME, 1
    )
    assert bentoml_spans, "BentoML exported no span in the monitoring span's trace"
    assert span.parent_span_id in {s.span_id for s in bentoml_spans}
    assert span.parent_span_id == response.headers["x-bentoml-request-id"]


BROKEN_SERVICE = """
import bentoml


@bentoml.service
class Broken:
    def __init__(self) -> None:
        raise RuntimeError("the model file is missing")

    @bentoml.api
    def predict(self, x: int) -> int:
        return x
"""


def test_a_server_whose_service_cannot_start_fails_at_once_with_its_log(tmp_path: Path) -> None:
    # BentoML restarts a failing worker for ever, so the server never exits: the helper must
    # notice the failure in the log rather than wait out its 90 s.
    (tmp_path / "broken_service.py").write_text(BROKEN_SERVICE)
    server = start_bentoml(tmp_path / "home", {}, "broken_service:Broken", tmp_path)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="could not start its service") as caught:
        wait_ready(server)
    assert time.monotonic() - started < 45
    assert "the model file is missing" in str(caught.value)
    assert server.process.poll() is not None
