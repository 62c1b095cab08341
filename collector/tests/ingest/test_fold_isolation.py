"""A batch whose fold into window state fails costs only itself: the other windows of its group
commit get their rows, and its own window is folded again from its journal without it (the
failing batch is quarantined, as a replay would), never left half-counted.

The collector is real (uvicorn, SQLite, OTLP/HTTP JSON); the failure is injected into the window
summary's fold, for one value no released fold fails on, as an unforeseen bug would be.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch import contract
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import Frame, NumericBlock, encode_frame, numeric
from inferwatch_testkit import FakeClock
from inferwatch_testkit.collector import T0, windows

POISON = -7.25e77


def span(model: str, n: int, rows: int, poisoned: bool = False) -> dict[str, Any]:
    values = np.random.default_rng(n).normal(size=(rows, 2))
    if poisoned:
        values[0, 0] = POISON
    frame = Frame(rows, (numeric("x", values, names=["x0", "x1"]),))
    attributes = {
        contract.ATTR_SCHEMA_VERSION: {"intValue": str(contract.SCHEMA_VERSION)},
        contract.ATTR_MODEL_NAME: {"stringValue": model},
        contract.ATTR_MODEL_VERSION: {"stringValue": "1"},
        contract.ATTR_ROWS: {"intValue": str(rows)},
        contract.ATTR_INPUT_FRAME: {"bytesValue": base64.b64encode(encode_frame(frame)).decode()},
    }
    start_ns = int((T0 + 1) * 1e9) + n
    return {
        "traceId": "0" * 32,
        "spanId": f"{n:016x}",
        "name": contract.SPAN_NAME,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 1_000_000),
        "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
    }


def post(client: httpx.Client, spans: list[dict[str, Any]]) -> None:
    scope = {"name": contract.INSTRUMENTATION_SCOPE}
    request = {"resourceSpans": [{"scopeSpans": [{"scope": scope, "spans": spans}]}]}
    response = client.post("/v1/traces", json=request)
    assert response.status_code == 200, response.text
    assert "partialSuccess" not in response.json() or not response.json()["partialSuccess"]


def summary(client: httpx.Client, model: str) -> dict[str, Any]:
    (window,) = windows(client, model)
    found: dict[str, Any] = client.get(f"/v1/models/{model}/windows/{window['id']}").json()
    return found["summary"]


def test_a_failing_fold_costs_only_its_batch(
    make_collector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    update = WindowSummary.update

    def failing_on_poison(self: WindowSummary, frame: Frame | None, *args: Any, **kw: Any) -> None:
        for column in frame.columns if frame is not None else ():
            if isinstance(column, NumericBlock) and (column.values == POISON).any():
                raise ValueError(f"cannot fold {POISON}")
        update(self, frame, *args, **kw)

    monkeypatch.setattr(WindowSummary, "update", failing_on_poison)
    # The clock stands still: no checkpoint, so window b's earlier batch is only in the journal.
    collector = make_collector(FakeClock(T0), models={"a": {"window": 3600}, "b": {"window": 3600}})
    with collector.client() as client, caplog.at_level(logging.INFO):
        post(client, [span("b", 1, 4)])
        assert summary(client, "b")["rows"] == 4
        # One request: one group commit, folded together.
        post(client, [span("a", 2, 5), span("b", 3, 6), span("b", 4, 7, poisoned=True)])
        a, b = summary(client, "a"), summary(client, "b")
        health = client.get("/healthz").json()
        # The window records count what was stored, the poisoned batch included.
        assert [w["rows"] for w in windows(client, "b")] == [17]
    assert (a["requests"], a["rows"], a["columns"]["rows"]) == (1, 5, 5)
    # Window b: its earlier batch and the good one of the group, each once; not the poisoned.
    assert (b["requests"], b["rows"], b["columns"]["rows"]) == (2, 10, 10)
    numeric_x0 = next(c for c in b["columns"]["columns"] if c["name"] == "x0")
    assert numeric_x0["count"] == 10 and numeric_x0["min"] > -1e6
    assert health["quarantined_batches"] == 1 and health["oldest_quarantined_at"] is not None
    assert "folding it again batch by batch" in caplog.text
    assert "could not be folded into window state" in caplog.text
    assert str(POISON) not in caplog.text
