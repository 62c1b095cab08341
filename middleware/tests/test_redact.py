"""The middleware's ``redact``: named request features never leave the process as they are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import inferwatch
from inferwatch.frame import CategoricalColumn
from inferwatch.middleware import InferwatchMiddleware
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

SSN = "123-45-6789"
EMAIL = "carol@example.com"


async def approve(request: Request) -> Response:
    rows = (await request.json())["rows"]
    return JSONResponse([row["age"] > 30 for row in rows])


@pytest.fixture
def client(receiver: Receiver) -> Iterator[TestClient]:
    app = Starlette(routes=[Route("/approve", approve, methods=["POST"])])
    app.add_middleware(
        InferwatchMiddleware,
        model="credit-mw",
        redact={"ssn": "drop", "email": "hash"},
        endpoint=receiver.url,
        redact_key="mw-secret",
    )
    inferwatch.shutdown()
    with TestClient(app) as test_client:
        yield test_client
    inferwatch.shutdown()


def test_redacted_request_fields_are_not_exported(client: TestClient, receiver: Receiver) -> None:
    rows = [{"ssn": SSN, "email": EMAIL, "age": 41}, {"ssn": "x", "email": EMAIL, "age": 20}]
    answer = client.post("/approve", json={"rows": rows})
    assert answer.status_code == 200 and answer.json() == [True, False]
    assert inferwatch.flush(timeout=10.0)
    (span,) = receiver.predictions("credit-mw", 1)
    body = b"".join(receiver.payloads)
    assert SSN.encode() not in body and EMAIL.encode() not in body
    features = span.inputs.features()
    assert "ssn" not in features
    email = features["email"]
    assert isinstance(email, CategoricalColumn)
    tokens = email.values()
    assert tokens[0] == tokens[1] and str(tokens[0]).startswith("h:")


def test_bad_rules_are_refused_when_the_app_is_built() -> None:
    with pytest.raises(ValueError):
        InferwatchMiddleware(Starlette(), model="m", redact={"ssn": "blank"})
