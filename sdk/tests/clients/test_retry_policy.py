"""The sans-IO retry decisions shared by the blocking and asyncio clients."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from inferwatch._http import (
    Attempts,
    CollectorUnavailable,
    RequestRejected,
    RetryPolicy,
    parse_retry_after,
)

URL = "http://collector.test"


def answer(status: int, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    request = httpx.Request("POST", URL + "/v1/labels")
    return httpx.Response(status, headers=headers, json=body or None, request=request)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff=1.0, max_delay=5.0)
    for retry, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (8, 5.0)]:
        delays = {policy.delay(retry) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not one fixed value


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(backoff=0.01, max_delay=30.0)
    assert policy.delay(0, retry_after=2.5) == 2.5
    assert policy.delay(0, retry_after=3600) == 30.0


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(email.utils.formatdate(now + 20, usegmt=True), now=now) == 20.0
    assert parse_retry_after(email.utils.formatdate(now - 20, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


def test_attempts_decide_retry_reject_and_give_up() -> None:
    attempts = Attempts(RetryPolicy(max_retries=2, backoff=0.01), "labels batch 1 of 1", URL)
    assert attempts.after(answer(429, {"Retry-After": "2"}, error="slow down")) == 2.0
    assert attempts.after(httpx.ConnectError("refused")) is not None
    with pytest.raises(CollectorUnavailable) as caught:
        attempts.after(answer(503, error="overloaded"))
    assert caught.value.status == 503
    assert str(caught.value) == (
        f"could not send labels batch 1 of 1 to the collector at {URL}: 3 attempts failed, "
        "the last with HTTP 503: overloaded"
    )
    fresh = Attempts(RetryPolicy(), "labels batch 1 of 1", URL)
    assert fresh.after(answer(200, accepted=1)) is None
    with pytest.raises(RequestRejected, match="rejected labels batch 1 of 1 with HTTP 422: bad"):
        fresh.after(answer(422, error="bad"))


def test_a_body_without_error_field_is_quoted_as_text() -> None:
    request = httpx.Request("POST", URL)
    response = httpx.Response(404, text="no such route", request=request)
    with pytest.raises(RequestRejected, match="HTTP 404: no such route"):
        Attempts(RetryPolicy(), "x", URL).after(response)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"max_retries": -1}, "max_retries"), ({"backoff": float("inf")}, "backoff")],
)
def test_bad_policy(kwargs: dict[str, float], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
