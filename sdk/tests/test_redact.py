"""Features dropped or hashed before anything leaves the process: the raw values are in no
exported byte, for each shape of inputs, and a hashed feature is a keyed token."""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import inferwatch
from inferwatch.frame import CategoricalColumn
from inferwatch_testkit.otlp import OTLPReceiver as Receiver
from inferwatch_testkit.otlp import ReceivedSpan

KEY = "deployment-secret"
SSN = "123-45-6789"
EMAIL = "alice@example.com"
SALARY = 98765.4321
ZIP = 94105.0


def token(value: str) -> str:
    return "h:" + hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


def raw_forms(value: object) -> list[bytes]:
    """How a value could appear in an OTLP body: its text, or its float64 bytes."""
    if isinstance(value, str):
        return [value.encode()]
    return [struct.pack("<d", value), repr(value).encode(), struct.pack("<f", value)]


def exported(receiver: Receiver, model: str) -> tuple[ReceivedSpan, bytes]:
    assert inferwatch.flush(timeout=10.0)
    spans = receiver.predictions(model, 1)
    assert len(spans) == 1
    return spans[0], b"".join(receiver.payloads)


def records() -> list[dict[str, Any]]:
    return [
        {"ssn": SSN, "email": EMAIL, "salary": SALARY, "age": 41.0},
        {"ssn": "987-65-4321", "email": "bob@example.com", "salary": 1.5, "age": 29.0},
    ]


def dataframe() -> Any:
    pd = pytest.importorskip("pandas", reason="pandas is not installed: no DataFrame inputs")
    return pd.DataFrame(records())


def as_array() -> np.ndarray:
    return np.array([[41.0, SALARY, ZIP], [29.0, 1.5, 10001.0]])


INPUTS: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "list of dicts": (records, {}),
    "DataFrame": (dataframe, {}),
    "numpy": (as_array, {"feature_names": ["age", "salary", "zip"]}),
}


@pytest.fixture
def wire(receiver: Receiver) -> Receiver:
    # Uncompressed, so that the bytes searched are the bytes sent.
    inferwatch.init(endpoint=receiver.url, compression="none", flush_interval=0.05, redact_key=KEY)
    return receiver


@pytest.mark.parametrize("shape", list(INPUTS))
def test_dropped_and_hashed_features_never_leave_raw(
    wire: Receiver, model: str, shape: str
) -> None:
    make, options = INPUTS[shape]
    inputs = make()
    is_array = shape == "numpy"
    redact: dict[str, Any] = (
        {"salary": "drop", "zip": "hash"} if is_array else {"ssn": "drop", "email": "hash"}
    )
    redact["salary"] = "drop"

    @inferwatch.monitor(model=model, redact=redact, **options)
    def predict(x: object) -> list[float]:
        return [0.0, 1.0]

    predict(inputs)
    span, body = exported(wire, model)
    secrets: list[object] = [SALARY] + ([ZIP] if is_array else [SSN, EMAIL, "bob@example.com"])
    for secret in secrets:
        for form in raw_forms(secret):
            assert form not in body, f"{secret!r} left the process"
    features = span.inputs.features()
    assert "salary" not in features and "ssn" not in features
    assert np.array_equal(features["age"], [41.0, 29.0])  # the others are untouched
    hashed = features["zip" if is_array else "email"]
    assert isinstance(hashed, CategoricalColumn)
    expected = repr(ZIP) if is_array else EMAIL
    assert hashed.values()[0] == token(expected)
    assert token(expected).encode() in body


def test_equal_values_give_equal_tokens_across_calls(wire: Receiver, model: str) -> None:
    @inferwatch.monitor(model=model, redact={"email": "hash"})
    def predict(x: object) -> float:
        return 1.0

    predict({"email": EMAIL, "age": 1.0})
    predict({"email": EMAIL, "age": 2.0})
    assert inferwatch.flush(timeout=10.0)
    spans = wire.predictions(model, 2)
    tokens = {s.inputs.features()["email"].values()[0] for s in spans}  # type: ignore[union-attr]
    assert tokens == {token(EMAIL)}


def test_init_names_features_per_model(wire: Receiver, model: str) -> None:
    inferwatch.init(
        endpoint=wire.url,
        compression="none",
        flush_interval=0.05,
        redact={model: {"ssn": "drop"}, "other-model": {"age": "drop"}},
    )

    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        return 1.0

    predict({"ssn": SSN, "age": 3.0})
    span, body = exported(wire, model)
    assert SSN.encode() not in body
    assert set(span.inputs.features()) == {"age"}


def test_without_a_key_a_feature_to_hash_is_dropped_not_sent(
    receiver: Receiver, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERWATCH_REDACT_KEY", raising=False)
    inferwatch.init(endpoint=receiver.url, compression="none", flush_interval=0.05)

    @inferwatch.monitor(model=model, redact={"email": "hash"})
    def predict(x: object) -> float:
        return 1.0

    predict({"email": EMAIL, "age": 3.0})
    span, body = exported(receiver, model)
    assert EMAIL.encode() not in body
    assert set(span.inputs.features()) == {"age"}
    assert "no redact key" in span.attributes["inferwatch.capture_error"]


def test_the_key_may_come_from_the_environment(
    receiver: Receiver, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERWATCH_REDACT_KEY", KEY)
    inferwatch.init(endpoint=receiver.url, compression="none", flush_interval=0.05)

    @inferwatch.monitor(model=model, redact={"email": "hash"})
    def predict(x: object) -> float:
        return 1.0

    predict({"email": EMAIL})
    span, _ = exported(receiver, model)
    assert span.inputs.features()["email"].values() == [token(EMAIL)]  # type: ignore[union-attr]


@pytest.mark.parametrize("redact", [{"ssn": "mask"}, {"": "drop"}, ["ssn"], {3: "drop"}], ids=repr)
def test_bad_rules_are_refused_when_decorating(redact: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        inferwatch.monitor(model="m", redact=redact)


def test_the_key_is_not_in_the_settings_repr() -> None:
    settings = inferwatch.init(endpoint="http://127.0.0.1:9", redact_key=KEY, api_key="k3y")
    assert KEY not in repr(settings) and "k3y" not in repr(settings)


def test_a_row_of_numbers_is_redacted_on_every_call(wire: Receiver, model: str) -> None:
    # The one-row dict of numbers has a fast path reusing the last call's frame header.
    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        return 1.0

    predict({"salary": 1.25, "age": 1.0})  # before the rule: both sent, the header cached
    inferwatch.init(
        endpoint=wire.url,
        compression="none",
        flush_interval=0.05,
        redact={model: {"salary": "drop"}},
    )
    for _ in range(2):
        predict({"salary": SALARY, "age": 2.0})
    assert inferwatch.flush(timeout=10.0)
    spans = wire.predictions(model, 3)
    assert [sorted(s.inputs.features()) for s in spans[1:]] == [["age"], ["age"]]
    body = b"".join(wire.payloads)
    assert struct.pack("<d", SALARY) not in body
