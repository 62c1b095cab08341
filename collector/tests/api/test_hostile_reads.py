"""Whatever a database holds (written by an earlier release, or by any path that let a value
through), no read route answers 500: times past year 9999 are clamped, lone surrogates escaped,
non-finite numbers shown as null."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch.collector.window.state import WindowState
from inferwatch.collector.window.summaries import WindowSummary
from inferwatch.frame import Frame, categorical, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, windows

LONE = "\ud800"
# A span that started at 1e21 ns (year 33658), as an earlier release stored it, and one before
# year 1.
FAR_FUTURE_MS = 10**15
FAR_PAST_MS = -(10**15)
MODELS = ("late", "nan")


def result_row(feature: str) -> dict[str, Any]:
    return {
        "detector": "psi",
        "feature": feature,
        "score": 0.5,
        "p_value": None,
        "threshold": 0.2,
        "severity": "warning",
        "decision": "alert",
        "message": f"{feature} drifted",
        "details": {"category": feature},
    }


def hostile_state() -> bytes:
    state = WindowState(summary=WindowSummary())
    inputs = Frame(3, (categorical(f"c{LONE}", [f"a{LONE}", "b", None]),))
    state.summary.update(inputs)
    state.summary.update(Frame(2, (numeric(f"x{LONE}", np.array([1.0, 2.0])),)))
    state.rows, state.requests, state.estimated_rows = 5, 2, float("inf")
    state.issues[f"issue {LONE}"] = 1
    return state.to_bytes()


def write_hostile_rows(path: Path) -> None:
    # SQLite text cannot hold a lone surrogate (sqlite3 refuses to encode one), but the JSON
    # and blobs the collector stores can.
    conn = sqlite3.connect(path)
    results = json.dumps([result_row(f"f{LONE}")])
    details = json.dumps({"rows": 2, "columns": {"name": f"n{LONE}"}, "latency": {"p50": 1.0}})
    for model, start, evaluated in (
        ("future", FAR_FUTURE_MS, True),
        ("past", FAR_PAST_MS, True),
        ("lone", 0, True),
        ("open", FAR_FUTURE_MS, False),
    ):
        cursor = conn.execute(
            "INSERT INTO windows (model, version, start_ms, end_ms, closed, requests, rows, "
            "results, details, evaluated_ms) VALUES (?, ?, ?, ?, ?, 2, 2, ?, ?, ?)",
            (
                model,
                "1",
                start,
                start + 60_000,
                int(evaluated),
                results if evaluated else None,
                details if evaluated else None,
                FAR_FUTURE_MS if evaluated else None,
            ),
        )
        window_id = cursor.lastrowid
        if not evaluated:
            conn.execute(
                "INSERT INTO window_states (window_id, instance, state) VALUES (?, 'old', ?)",
                (window_id, hostile_state()),
            )
        evidence = [
            {
                "window_id": window_id,
                "window_start_ms": start,
                "window_end_ms": start + 60_000,
                "result": result_row(f"f{LONE}"),
            }
        ]
        conn.execute(
            "INSERT INTO alerts (model, version, check_name, severity, state, opened_ms, "
            "resolved_ms, updated_ms, message, window_id, last_window_id, evidence) "
            "VALUES (?, ?, 'drift', 'warning', 'resolved', ?, ?, ?, ?, ?, ?, ?)",
            (
                model,
                "1",
                start,
                FAR_FUTURE_MS,
                FAR_PAST_MS,
                "drifted",
                window_id,
                window_id,
                json.dumps(evidence),
            ),
        )
    conn.commit()
    conn.close()


def get_json(client: httpx.Client, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.json()


def test_stored_values_out_of_range_never_make_a_read_route_fail(
    make_collector, make_sender, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    models = {"sane": {"window": 60, "allowed_lateness": 0}}
    collector = make_collector(clock, models=models)
    sender = make_sender(collector.url)
    inputs, outputs = mixed_frames(np.random.default_rng(1), 20)
    sender.send("sane", "1", int(T0 * 1e9), inputs, [f"s{i}" for i in range(20)], outputs)
    sender.flush()
    with collector.client() as client:
        wait_for(lambda: sum(w["rows"] for w in windows(client, "sane")) == 20, what="rows")
    collector.stop()
    write_hostile_rows(tmp_path / "collector.db")

    collector = make_collector(clock, models=models)
    with collector.client() as client:
        listed = get_json(client, "/v1/models")
        names = [entry["model"] for entry in listed["models"]]
        assert {"future", "past", "sane", "open", "lone"} <= set(names)
        future = next(entry for entry in listed["models"] if entry["model"] == "future")
        assert future["versions"][0]["first"] == "9999-12-31T23:59:59.999Z"
        for model in names:
            path = f"/v1/models/{model}"
            found = get_json(client, f"{path}/windows")["windows"]
            for window in found:
                detail = get_json(client, f"{path}/windows/{window['id']}")
                assert detail["id"] == window["id"]
            get_json(client, f"{path}/alerts")
            get_json(client, f"{path}/metrics")
            get_json(client, f"{path}/config")
        past = get_json(client, "/v1/models/past/windows")["windows"][0]
        assert past["start"] == "0001-01-01T00:00:00.000Z"
        (alert,) = get_json(client, "/v1/models/future/alerts")["alerts"]
        assert alert["evidence"][0]["result"]["feature"] == f"f{LONE}"
        (opened,) = get_json(client, "/v1/models/open/windows")["windows"]
        summary = get_json(client, f"/v1/models/open/windows/{opened['id']}")["summary"]
        assert summary["estimated_rows"] is None
        # Names in a window's summary show a lone surrogate as the text of its escape.
        names_shown = {column["name"] for column in summary["columns"]["columns"]}
        assert names_shown == {"c\\ud800", "x\\ud800"}
        assert client.get("/metrics").status_code == 200


def test_stored_non_finite_settings_fall_back_to_the_file_with_a_warning(
    make_collector, make_sender, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    make_collector(clock).stop()
    # What an earlier release stored for a PUT it answered 500 to.
    conn = sqlite3.connect(tmp_path / "collector.db")
    for model, settings in (
        ("late", {"window": 60, "allowed_lateness": math.inf}),
        ("nan", {"window": 60, "detectors": {"error_rate": {"threshold": math.nan}}}),
    ):
        conn.execute(
            "INSERT INTO model_configs (model, settings) VALUES (?, ?)",
            (model, json.dumps(settings)),
        )
    conn.commit()
    conn.close()

    with caplog.at_level(logging.WARNING):
        collector = make_collector(clock, models={m: {"allowed_lateness": 0} for m in MODELS})
        sender = make_sender(collector.url)
        inputs, _ = mixed_frames(np.random.default_rng(2), 10)
        for model in MODELS:
            sender.send(model, "1", int(T0 * 1e9), inputs, [f"{model}{i}" for i in range(10)])
        sender.flush()
        with collector.client() as client:
            for model in MODELS:
                shown = get_json(client, f"/v1/models/{model}/config")
                assert shown["allowed_lateness"] == 0.0  # the file's
                wait_for(lambda m=model: sum(w["rows"] for w in windows(client, m)) == 10)
            clock.advance_to(T0 + 3600)
            for model in MODELS:
                wait_for(
                    lambda m=model: all(w["closed"] for w in windows(client, m)),
                    what=f"the window of {model} closed",
                )
    for model in MODELS:
        assert f"ignoring the stored settings changes of {model}" in caplog.text
