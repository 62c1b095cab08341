"""API keys on a real collector: who may call which route, for which models, and who may name code
to import in a model's settings (docs/security.md)."""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inferwatch import contract
from inferwatch.collector import load_config
from inferwatch.frame import encode_frame
from inferwatch_testkit import wait_for
from inferwatch_testkit.collector import mixed_frames, total_rows

PROTOBUF = "application/x-protobuf"


def hash_key(key: str) -> str:
    """The configured form of a key, as docs/security.md gives it."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


ADMIN, CREDIT_WRITER, READER = "admin-key-1", "credit-writer-key-2", "reader-key-3"
KEYS = [
    {"name": "ops", "hash": hash_key(ADMIN), "scopes": ["read", "write", "admin"]},
    {"name": "credit-service", "key": CREDIT_WRITER, "scopes": ["write"], "models": ["credit"]},
    {"name": "dashboard", "key": READER, "scopes": ["read"], "models": ["credit"]},
]
EVERY_KEY = (ADMIN, CREDIT_WRITER, READER)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def export_body(models: list[str]) -> bytes:
    """An OTLP protobuf request of one span per model, recorded by the OpenTelemetry SDK."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
    rng = np.random.default_rng(0)
    for index, model in enumerate(models):
        inputs, outputs = mixed_frames(rng, 2)
        with tracer.start_as_current_span(contract.SPAN_NAME) as span:
            span.set_attributes(
                {
                    contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
                    contract.ATTR_MODEL_NAME: model,
                    contract.ATTR_MODEL_VERSION: "1",
                    contract.ATTR_ROWS: 2,
                    contract.ATTR_PREDICTION_IDS: [f"{model}-{index}-{i}" for i in range(2)],
                    contract.ATTR_INPUT_FRAME: encode_frame(inputs),
                    contract.ATTR_OUTPUT_FRAME: encode_frame(outputs),
                }
            )
    provider.shutdown()
    return bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


@pytest.fixture
def keyed(make_collector) -> Iterator[httpx.Client]:
    collector = make_collector(keys=KEYS)
    with collector.client() as client:
        yield client


def test_no_key_or_an_unknown_key_is_401_without_echoing_it(keyed) -> None:
    missing = keyed.get("/v1/models")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <key>" in missing.json()["error"]
    unknown = keyed.get("/v1/models", headers=bearer("not-a-key-4"))
    assert unknown.status_code == 401
    assert "not-a-key-4" not in unknown.text
    assert keyed.get("/v1/models", headers=bearer(ADMIN)).status_code == 200
    assert keyed.get("/healthz").status_code == 200


def test_a_route_needing_a_scope_the_key_lacks_is_403_naming_both(keyed) -> None:
    refused = keyed.get("/v1/models/credit/windows", headers=bearer(CREDIT_WRITER))
    assert refused.status_code == 403
    assert refused.json()["error"] == (
        "the API key 'credit-service' lacks the 'read' scope this route needs; its scopes are write"
    )
    labels = {"model": "credit", "labels": [{"prediction_id": "p", "label": 1}]}
    refused = keyed.post("/v1/labels", json=labels, headers=bearer(READER))
    assert refused.status_code == 403 and "'write' scope" in refused.json()["error"]
    put = keyed.put("/v1/models/credit/config", json={"window": 60}, headers=bearer(CREDIT_WRITER))
    assert put.status_code == 403 and "'admin' scope" in put.json()["error"]
    uploads = "/v1/models/credit/versions/1/reference/uploads"
    assert keyed.post(uploads, headers=bearer(READER)).status_code == 403
    assert keyed.post(uploads, headers=bearer(CREDIT_WRITER)).status_code == 201
    assert keyed.get("/v1/models/credit/windows", headers=bearer(READER)).status_code == 200


def test_a_key_touches_only_its_models(keyed) -> None:
    for path in ("/v1/models/fraud/windows", "/v1/models/fraud/config"):
        refused = keyed.get(path, headers=bearer(READER))
        assert refused.status_code == 403
        assert refused.json()["error"] == (
            "the API key 'dashboard' may not touch model 'fraud'; its models are 'credit'"
        )
    labels = {"model": "fraud", "labels": [{"prediction_id": "p", "label": 1}]}
    refused = keyed.post("/v1/labels", json=labels, headers=bearer(CREDIT_WRITER))
    assert refused.status_code == 403 and "model 'fraud'" in refused.json()["error"]
    labels["model"] = "credit"
    assert keyed.post("/v1/labels", json=labels, headers=bearer(CREDIT_WRITER)).status_code == 200
    # Both models have settings; the key's list shows only its own.
    assert keyed.put("/v1/models/fraud/config", json={}, headers=bearer(ADMIN)).status_code == 200
    assert keyed.put("/v1/models/credit/config", json={}, headers=bearer(ADMIN)).status_code == 200
    shown = keyed.get("/v1/models", headers=bearer(READER)).json()["models"]
    assert [m["model"] for m in shown] == ["credit"]
    every = keyed.get("/v1/models", headers=bearer(ADMIN)).json()["models"]
    assert [m["model"] for m in every] == ["credit", "fraud"]


def test_spans_of_other_models_are_rejected_and_the_rest_stored(keyed) -> None:
    headers = {**bearer(CREDIT_WRITER), "Content-Type": PROTOBUF}
    answer = keyed.post("/v1/traces", content=export_body(["credit", "fraud"]), headers=headers)
    assert answer.status_code == 200
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1
    assert "may not touch model 'fraud'" in response.partial_success.error_message
    with httpx.Client(base_url=keyed.base_url, headers=bearer(ADMIN)) as admin:
        wait_for(lambda: total_rows(admin, "credit") == 2, what="the credit span stored")
        assert admin.get("/v1/models/fraud/windows").json()["windows"] == []

    # None in scope: the whole request is refused, as OTLP refuses (a google.rpc.Status).
    answer = keyed.post("/v1/traces", content=export_body(["fraud"]), headers=headers)
    assert answer.status_code == 403
    status = Status.FromString(answer.content)
    assert status.code == 7 and "may not touch model 'fraud'" in status.message
    # A key without the write scope, in OTLP JSON.
    answer = keyed.post(
        "/v1/traces", content=b"{}", headers={**bearer(READER), "Content-Type": "application/json"}
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/json")
    assert "'write' scope" in json_format.Parse(answer.text, Status()).message
    missing = keyed.post("/v1/traces", content=b"", headers={"Content-Type": PROTOBUF})
    assert missing.status_code == 401 and Status.FromString(missing.content).code == 16


# -- settings that name code to import -------------------------------------------------------


def performance_metrics(*metrics: str) -> dict[str, Any]:
    return {"detectors": {"performance": {"metrics": list(metrics)}}}


@pytest.fixture
def metric_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of the operator's with a metric function, importable by the collector."""
    name = f"operators_metrics_{time.time_ns()}"
    (tmp_path / f"{name}.py").write_text("def profit(stats):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.parametrize("spec", ["sys:exit", "this:x", "os:system"])
def test_without_keys_a_put_naming_code_is_refused_before_importing_it(
    make_collector, spec
) -> None:
    sys.modules.pop("this", None)
    collector = make_collector()
    with collector.client() as client:
        refused = client.put("/v1/models/victim/config", json=performance_metrics(spec))
        assert refused.status_code == 403
        assert refused.json()["error"] == (
            f"the config names code to import (the metric {spec!r}); only the config file or a "
            "key with the admin scope may name code (docs/security.md)"
        )
        assert "this" not in sys.modules
        # Nothing was stored: the model's settings are the defaults.
        shown = client.get("/v1/models/victim/config").json()
        assert shown["detectors"]["performance"]["metrics"] is None
        # Thresholds and windows change as before.
        changed = client.put("/v1/models/victim/config", json={"window": "2m"})
        assert changed.status_code == 200 and changed.json()["window"] == 120


def test_a_metric_the_file_names_stays_usable_by_puts_that_do_not_name_code(
    make_collector, metric_module
) -> None:
    file_metric = performance_metrics(f"{metric_module}:profit")
    collector = make_collector(models={"credit": file_metric})
    with collector.client() as client:
        bounded = {"detectors": {"performance": {"min": {"profit": 0}}}}
        changed = client.put("/v1/models/credit/config", json=bounded)
        assert changed.status_code == 200, changed.text
        performance = changed.json()["detectors"]["performance"]
        assert performance["metrics"] == [f"{metric_module}:profit"]
        assert performance["min"] == {"profit": 0}
        # Putting the file's own metric again names nothing new.
        again = client.put("/v1/models/credit/config", json=file_metric)
        assert again.status_code == 200


def test_an_admin_key_names_code_resolved_and_checked_as_it_is_put(
    make_collector, metric_module
) -> None:
    collector = make_collector(keys=KEYS)
    with collector.client(headers=bearer(ADMIN)) as client:
        for spec, why in [
            ("sys:exit", "sys.exit is not a Python function taking one argument"),
            (f"{metric_module}:missing", f"{metric_module} has no function 'missing'"),
            ("no_such_module_here:f", "cannot import 'no_such_module_here'"),
        ]:
            refused = client.put("/v1/models/credit/config", json=performance_metrics(spec))
            assert refused.status_code == 400, refused.text
            assert why in refused.json()["error"]
        spec = f"{metric_module}:profit"
        stored = client.put("/v1/models/credit/config", json=performance_metrics(spec))
        assert stored.status_code == 200, stored.text
        assert stored.json()["detectors"]["performance"]["metrics"] == [spec]


def test_no_key_reaches_the_log(make_collector, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    collector = make_collector(keys=KEYS)
    with collector.client() as client:
        client.get("/v1/models", headers=bearer("a-wrong-key-5"))
        client.get("/v1/models/fraud/windows", headers=bearer(READER))
        client.put("/v1/models/credit/config", json={"window": 0}, headers=bearer(ADMIN))
        body = export_body(["credit", "fraud"])
        headers = {**bearer(CREDIT_WRITER), "Content-Type": PROTOBUF}
        assert client.post("/v1/traces", content=body, headers=headers).status_code == 200
    assert "rejected 1 inferwatch spans" in caplog.text  # the log was captured
    for key in (*EVERY_KEY, "a-wrong-key-5"):
        assert key not in caplog.text


def test_the_loaded_settings_keep_no_plaintext_key() -> None:
    config = load_config(None, keys=KEYS, api_keys=["simple-key-6"])
    shown = f"{config!r} {config.model_dump()} {[vars(k) for k in config.access_keys]}"
    for key in (*EVERY_KEY, "simple-key-6"):
        assert key not in shown
    assert {k.name: k.hash for k in config.access_keys}["api_keys[0]"] == hash_key("simple-key-6")


# The scopes table of docs/security.md.
SCOPES = {
    ("/v1/traces", "post"): "write",
    ("/v1/labels", "post"): "write",
    ("/v1/models/{model}/versions/{version}/reference/uploads", "post"): "write",
    (
        "/v1/models/{model}/versions/{version}/reference/uploads/{upload_id}/parts/{part}",
        "put",
    ): "write",
    ("/v1/models/{model}/versions/{version}/reference/uploads/{upload_id}/commit", "post"): "write",
    ("/v1/models/{model}/versions/{version}/reference", "get"): "read",
    ("/v1/models", "get"): "read",
    ("/v1/models/{model}/windows", "get"): "read",
    ("/v1/models/{model}/windows/{window_id}", "get"): "read",
    ("/v1/models/{model}/versions/{version}/feature-history", "get"): "read",
    ("/v1/models/{model}/alerts", "get"): "read",
    ("/v1/models/{model}/metrics", "get"): "read",
    ("/v1/models/{model}/config", "get"): "read",
    ("/v1/models/{model}/config", "put"): "admin",
    ("/v1/alerts/{alert_id}", "get"): "read",
    ("/v1/alerts/{alert_id}/acknowledge", "post"): "admin",
    ("/v1/alerts/{alert_id}/silence", "post"): "admin",
    ("/v1/alerts/{alert_id}/silence", "delete"): "admin",
}


def test_every_v1_route_declares_the_scope_the_docs_give(keyed) -> None:
    document = keyed.get("/openapi.json").json()
    declared = {
        (path, method): operation.get("x-inferwatch-scope")
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert {k: v for k, v in declared.items() if k[0].startswith("/v1/")} == SCOPES
    assert {k: v for k, v in declared.items() if not k[0].startswith("/v1/")} == {
        ("/healthz", "get"): None,
        ("/metrics", "get"): None,
        ("/", "get"): None,
    }
