"""The query, reference, config and service routes: answers and refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fastapi.routing import iter_route_contexts

from inferwatch.collector import load_config
from inferwatch.collector.receive.batch import Overloaded, PredictionBatch
from inferwatch.collector.runtime.collector import Collector
from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE
from inferwatch.frame import Frame, categorical, encode_frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, windows

BASE = "/v1/models/credit/versions/1/reference"


def reference_part(rng: np.random.Generator, rows: int) -> bytes:
    x = rng.normal(size=(rows, 2))
    frame = Frame(
        rows,
        (
            numeric("x", x, names=["x0", "x1"]),
            categorical("color", rng.choice(["red", "green"], size=rows)),
            categorical("prediction", rng.choice(["no", "yes"], size=rows), role="output"),
            categorical("y", rng.choice(["no", "yes"], size=rows), role="label"),
        ),
    )
    return encode_frame(frame)


def test_reference_upload_in_parts(make_collector, make_sender) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"credit": {"window": 60, "allowed_lateness": 0}})
    rng = np.random.default_rng(1)
    with collector.client() as client:
        response = client.post(f"{BASE}/uploads", json={"task": "classification"})
        assert response.status_code == 201
        upload = response.json()["upload_id"]
        frame_headers = {"content-type": FRAME_TYPE}
        for part in range(3):
            sent = client.put(
                f"{BASE}/uploads/{upload}/parts/{part}",
                content=reference_part(rng, 1000),
                headers=frame_headers,
            )
            assert sent.json() == {"rows": 1000}
        # A retried part replaces the earlier one rather than adding rows.
        client.put(
            f"{BASE}/uploads/{upload}/parts/2",
            content=reference_part(rng, 500),
            headers=frame_headers,
        )
        committed = client.post(f"{BASE}/uploads/{upload}/commit")
        assert committed.status_code == 200, committed.text
        assert committed.json() == {
            "model": "credit",
            "version": "1",
            "rows": 2500,
            "features": ["color", "x0", "x1"],
        }
        stored = client.get(BASE).json()
        assert stored["rows"] == 2500 and stored["source"] == "upload"
        # The upload is gone once committed.
        assert client.post(f"{BASE}/uploads/{upload}/commit").status_code == 404

        # Windows opened after the reference use its bins; the schema check sees a new column.
        sender = make_sender(collector.url)
        inputs, outputs = mixed_frames(rng, 40)
        inputs = Frame(40, (*inputs.columns, numeric("extra", rng.normal(size=40))))
        sender.send("credit", "1", int(T0 * 1e9), inputs, [f"i{j}" for j in range(40)], outputs)
        sender.flush()
        clock.advance_to(T0 + 61)
        (window,) = wait_for(
            lambda: (w := windows(client, "credit")) and w[0]["closed"] and w, what="close"
        )
        detail = client.get(f"/v1/models/credit/windows/{window['id']}").json()
        assert detail["summary"]["reference"] is True
        schema = [r for r in detail["results"] if r["detector"] == "schema"]
        assert [(r["feature"], r["decision"]) for r in schema] == [("extra", "alert")]
        columns = {c["name"]: c for c in detail["summary"]["columns"]["columns"]}
        assert sum(columns["x0"]["bin_counts"]) == 40


def test_reference_upload_refusals(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        bad_task = client.post(f"{BASE}/uploads", json={"task": "ranking"})
        assert bad_task.status_code == 400 and "task must be one of" in bad_task.json()["error"]
        upload = client.post(f"{BASE}/uploads").json()["upload_id"]
        part = f"{BASE}/uploads/{upload}/parts/0"
        wrong_type = client.put(part, content=b"a,b\n1,2", headers={"content-type": "text/csv"})
        assert wrong_type.status_code == 415 and FRAME_TYPE in wrong_type.json()["error"]
        not_frame = client.put(part, content=b"a,b\n1,2", headers={"content-type": FRAME_TYPE})
        assert not_frame.status_code == 400 and "IWF1" in not_frame.json()["error"]
        bad_part = client.put(
            f"{BASE}/uploads/{upload}/parts/x", content=b"", headers={"content-type": FRAME_TYPE}
        )
        assert bad_part.status_code == 400
        other = client.put(
            f"/v1/models/credit/versions/2/reference/uploads/{upload}/parts/0",
            content=b"",
            headers={"content-type": FRAME_TYPE},
        )
        assert other.status_code == 404
        empty = client.post(f"{BASE}/uploads/{upload}/commit")
        assert empty.status_code == 400 and "no parts" in empty.json()["error"]
        assert client.get(BASE).status_code == 404


def test_query_and_config_refusals(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        bad_time = client.get("/v1/models/m/windows", params={"start": "yesterday"})
        assert bad_time.status_code == 400 and "ISO 8601" in bad_time.json()["error"]
        backwards = client.get(
            "/v1/models/m/windows",
            params={"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
        )
        assert backwards.status_code == 400
        assert client.get("/v1/models/m/windows/abc").status_code == 400
        assert client.get("/v1/models/m/windows/99").status_code == 404
        assert client.get("/v1/models/m/alerts", params={"state": "x"}).status_code == 400
        for body, phrase in (
            ({"window": "soon"}, "config.window must be a duration"),
            ({"colour": 1}, "unknown setting(s) colour"),
            ({"reference": {"policy": "all"}}, "config.reference.policy"),
        ):
            response = client.put("/v1/models/m/config", json=body)
            assert response.status_code == 400 and phrase in response.json()["error"], response.text
        not_json = client.put("/v1/models/m/config", content=b"window=1")
        assert not_json.status_code == 415


def test_config_changes_apply_and_persist(make_collector, tmp_path: Path) -> None:
    collector = make_collector()
    with collector.client() as client:
        assert client.get("/v1/models/m/config").json()["window"] == 3600
        changed = client.put(
            "/v1/models/m/config",
            json={"window": "30s", "detectors": {"error_rate": {"threshold": 0.2}}},
        )
        assert changed.status_code == 200
        client.put("/v1/models/m/config", json={"detectors": {"schema": {"enabled": False}}})
        config = client.get("/v1/models/m/config").json()
    assert config["window"] == 30
    # Every check's effective settings: the changes, and each detector's defaults.
    assert config["detectors"]["error_rate"] == {
        "enabled": True,
        "threshold": 0.2,
        "min_requests": 10,
    }
    assert config["detectors"]["schema"]["enabled"] is False
    assert config["detectors"]["univariate_drift"]["alpha"] == 0.05
    collector.stop()
    # A new process on the same database keeps the change.
    restarted = make_collector()
    with restarted.client() as client:
        assert client.get("/v1/models/m/config").json()["window"] == 30


def test_api_keys_guard_v1_routes(make_collector, make_sender) -> None:
    collector = make_collector(api_keys=["s3cret"])
    with collector.client() as client:
        refused = client.get("/v1/models")
        assert refused.status_code == 401 and "Bearer" in refused.json()["error"]
        assert client.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert (
            client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        )
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/traces", content=b"").status_code == 401


def test_openapi_describes_every_route(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        schema = client.get("/openapi.json").json()
    routes = {
        (route.path, method.lower())
        for route in iter_route_contexts(collector.app.routes)
        if route.path != "/openapi.json"  # the document itself
        for method in (route.methods or ())  # none for the dashboard's static files
        if method != "HEAD"
    }
    described = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert routes == described
    window = schema["components"]["schemas"]["Window"]["properties"]
    assert {"id", "model", "version", "start", "end", "rows", "labelled", "results"} <= set(window)
    # Without API keys nothing asks for one.
    assert "securitySchemes" not in schema["components"]
    operations = [op for ops in schema["paths"].values() for op in ops.values()]
    assert not any("401" in op["responses"] or "security" in op for op in operations)


def test_metrics_include_receiver_counters(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        client.post(
            "/v1/traces", content=b"junk", headers={"content-type": "application/x-protobuf"}
        )
        text = client.get("/metrics").text
    assert "inferwatch_receiver_requests_total 1.0" in text
    assert "inferwatch_ingest_queue_rows 0.0" in text


async def test_full_queue_pushes_back(tmp_path: Path) -> None:
    config = load_config(None, db=f"sqlite:///{tmp_path / 'q.db'}", max_queue_rows=100)
    runtime = Collector.build(config)
    await runtime.pipeline.start()
    inputs, _ = mixed_frames(np.random.default_rng(0), 60)

    def batch(i: int) -> PredictionBatch:
        ids = tuple(f"q{i}-{j}" for j in range(60))
        return PredictionBatch(
            "q",
            "1",
            None,
            b"\1" * 16,
            i.to_bytes(8, "big"),
            int(T0 * 1e9),
            int(T0 * 1e9),
            None,
            ids,
            inputs,
            None,
        )

    # Hold the worker so the queue fills: the first submission waits, the second is refused.
    async with runtime.state_lock:
        first = asyncio.create_task(runtime.pipeline.submit([batch(1)]))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as refused:
            await runtime.pipeline.submit([batch(2)])
        assert "limit is 100" in str(refused.value) and refused.value.retry_after > 0
    await first
    await runtime.pipeline.stop()
    assert sum(w.rows for w in runtime.storage.windows.find("q")) == 60
    runtime.storage.close()


def test_refusals_name_the_field_and_never_answer_500(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        cases = [
            ("GET", "/v1/models/m/windows/abc", 400, "window_id must be an integer, got 'abc'"),
            # Past SQLite's integers: refused with the limit, not a database error.
            ("GET", f"/v1/models/m/windows/{2**63}", 400, "window_id must be at most"),
            ("GET", "/v1/models/m/alerts?state=x", 400, "state must be one of 'open', 'resolved'"),
            ("GET", "/v1/nothing", 404, "nothing is served at /v1/nothing"),
            ("DELETE", "/v1/models", 405, "DELETE is not allowed on /v1/models; allowed: GET"),
            ("GET", "/docs", 404, "nothing is served at /docs"),
            ("GET", "/redoc", 404, "nothing is served at /redoc"),
        ]
        for method, path, status, phrase in cases:
            response = client.request(method, path)
            assert response.status_code == status, (path, response.text)
            assert phrase in response.json()["error"], (path, response.text)
        upload = client.post(f"{BASE}/uploads").json()["upload_id"]
        huge_part = client.put(
            f"{BASE}/uploads/{upload}/parts/{2**64}",
            content=b"",
            headers={"content-type": FRAME_TYPE},
        )
        assert huge_part.status_code == 400 and "part must be at most" in huge_part.json()["error"]
        # JSON nested past what the parser recurses into.
        deep = client.put(
            "/v1/models/m/config",
            content=b'{"detectors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert deep.status_code == 400 and "the limit is 32" in deep.json()["error"], deep.text
        nested: dict[str, object] = {}
        for _ in range(400):
            nested = {"x": nested}
        fairly_deep = client.put("/v1/models/m/config", json={"detectors": {"d": nested}})
        assert fairly_deep.status_code in (200, 400), fairly_deep.text
