"""Hostile requests to the JSON API get a 4xx whose ``{"error": ...}`` names the problem (the
limit, for a limit); never a 500, never a retryable answer."""

from __future__ import annotations

import json

from inferwatch.frame import CONTENT_TYPE as FRAME_TYPE

REFERENCE = "/v1/models/m/versions/1/reference"
JSON = {"content-type": "application/json"}


def nested_list(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def nested_object(depth: int) -> str:
    return '{"x": ' * depth + "1" + "}" * depth


def labels_with(label: str) -> bytes:
    return b'{"model": "m", "labels": [{"prediction_id": "p1", "label": ' + label.encode() + b"}]}"


def assert_refused(response, status: int, phrase: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and phrase in body["error"], body
    assert "Retry-After" not in response.headers


def test_hostile_json_bodies_are_refused_by_name(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        cases = [
            # Nesting: refused at the limit, whether the parser could recurse that far or not.
            ("POST", "/v1/labels", labels_with(nested_list(1_000)), "nested more than 32 levels"),
            ("POST", "/v1/labels", labels_with(nested_list(50_000)), "the limit is 32"),
            (
                "PUT",
                "/v1/models/m/config",
                b'{"detectors": {"error_rate": ' + nested_object(1_000).encode() + b"}}",
                "nested more than 32 levels",
            ),
            # Numbers past a float's range, written out or as JSON's non-standard constants.
            ("POST", "/v1/labels", labels_with("1" * 400), "an integer of 400 digits"),
            ("POST", "/v1/labels", labels_with("-" + "9" * 400), "an integer of 400 digits"),
            ("POST", "/v1/labels", labels_with("1e400"), "label must be a finite number"),
            ("POST", "/v1/labels", labels_with("1" * 5000), "not valid JSON"),
            ("PUT", "/v1/models/m/config", b'{"window": %s}' % (b"1" * 400), "400 digits"),
            (
                "PUT",
                "/v1/models/m/config",
                b'{"allowed_lateness": Infinity}',
                "config.allowed_lateness must be a duration",
            ),
            (
                "PUT",
                "/v1/models/m/config",
                b'{"detectors": {"error_rate": {"threshold": NaN}}}',
                "config.detectors.error_rate.threshold",
            ),
            # A lone surrogate is not Unicode text: no database stores it.
            ("POST", "/v1/labels", labels_with('"\\ud800"'), "lone surrogate"),
            (
                "POST",
                "/v1/labels",
                b'{"model": "m\\udfff", "labels": [{"prediction_id": "p", "label": 1}]}',
                "lone surrogate",
            ),
            ("PUT", "/v1/models/m/config", b'{"\\ud800": 1}', "lone surrogate"),
            # JSON null is not an upload body (an empty body is).
            ("POST", f"{REFERENCE}/uploads", b"null", "must be a JSON object"),
        ]
        for method, path, body, phrase in cases:
            response = client.request(method, path, content=body, headers=JSON)
            assert_refused(response, 400, phrase)


def test_numbers_in_paths_are_refused_by_name(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        upload = client.post(f"{REFERENCE}/uploads").json()["upload_id"]
        part = f"{REFERENCE}/uploads/{upload}/parts"
        for value, phrase in ((str(2**63), "at most 9223372036854775807"), ("²", "an integer")):
            window = client.get(f"/v1/models/m/windows/{value}")
            assert_refused(window, 400, f"window_id must be {phrase}")
            sent = client.put(f"{part}/{value}", content=b"", headers={"content-type": FRAME_TYPE})
            assert_refused(sent, 400, f"part must be {phrase}")


def test_bodies_over_their_limit_are_413_naming_it(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        config = json.dumps({"window": 60, "pad": "x" * 2**20}).encode()
        assert_refused(
            client.put("/v1/models/m/config", content=config, headers=JSON),
            413,
            "the limit is 1048576 bytes",
        )
        upload = json.dumps({"task": "x" * 2**16}).encode()
        assert_refused(
            client.post(f"{REFERENCE}/uploads", content=upload, headers=JSON),
            413,
            "the limit is 65536 bytes",
        )


def test_method_not_allowed_lists_every_method_of_the_path(make_collector) -> None:
    collector = make_collector()
    with collector.client() as client:
        response = client.delete("/v1/models/m/config")
    assert_refused(response, 405, "allowed: GET, PUT")
    assert response.headers["Allow"] == "GET, PUT"
