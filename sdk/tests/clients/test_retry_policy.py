"""The sans-IO retry decisions (inferwatch.retry) and the collector clients' errors on them."""

from __future__ import annotations

import email.utils
from typing import TYPE_CHECKING

import httpx
import pytest

from inferwatch._http import CollectorAttempts, CollectorUnavailable, RequestRejected
from inferwatch.retry import Attempts, RetryPolicy, asend, parse_retry_after, send

if TYPE_CHECKING:
    from conftest import FakeCollector

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
    attempts = CollectorAttempts(
        RetryPolicy(max_retries=2, backoff=0.01), "labels batch 1 of 1", URL
    )
    assert attempts.after(answer(429, {"Retry-After": "2"}, error="slow down")) == 2.0
    assert attempts.after(httpx.ConnectError("refused")) is not None
    with pytest.raises(CollectorUnavailable) as caught:
        attempts.after(answer(503, error="overloaded"))
    assert caught.value.status == 503
    assert str(caught.value) == (
        f"could not send labels batch 1 of 1 to the collector at {URL}: 3 attempts failed, "
        "the last with HTTP 503: overloaded"
    )
    fresh = CollectorAttempts(RetryPolicy(), "labels batch 1 of 1", URL)
    assert fresh.after(answer(200, accepted=1)) is None
    with pytest.raises(RequestRejected, match="rejected labels batch 1 of 1 with HTTP 422: bad"):
        fresh.after(answer(422, error="bad"))


def test_a_body_without_error_field_is_quoted_as_text() -> None:
    request = httpx.Request("POST", URL)
    response = httpx.Response(404, text="no such route", request=request)
    with pytest.raises(RequestRejected, match="HTTP 404: no such route"):
        CollectorAttempts(RetryPolicy(), "x", URL).after(response)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"max_retries": -1}, "max_retries"), ({"backoff": float("inf")}, "backoff")],
)
def test_bad_policy(kwargs: dict[str, float], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_the_engine_says_final_without_raising() -> None:
    # inferwatch.retry is public: it returns final outcomes for the caller to judge.
    attempts = Attempts(RetryPolicy(max_retries=1, backoff=0.01))
    assert attempts.after(answer(404, error="no such hook")) is None
    assert attempts.after(TimeoutError()) is not None
    assert attempts.after(answer(503)) is None  # no retry left
    assert attempts.retries == 1
    server_errors = RetryPolicy(retry_statuses=frozenset({429, *range(500, 600)}))
    assert Attempts(server_errors).after(answer(500)) is not None
    assert Attempts(RetryPolicy()).after(answer(500)) is None
    with pytest.raises(ValueError, match="retry_statuses"):
        RetryPolicy(retry_statuses=frozenset({42}))


def test_send_returns_the_final_answer_or_raises_the_last_error(
    collector: FakeCollector, closed_port_url: str
) -> None:
    collector.script("labels", 503, {"error": "busy"}, {"Retry-After": "0"}, times=3)
    policy = RetryPolicy(max_retries=2, backoff=0.01)
    with httpx.Client(base_url=collector.url) as client:
        request = client.build_request("POST", "/v1/labels", json={"labels": []})
        response = send(client, request, attempts := Attempts(policy))
    assert (response.status_code, attempts.retries, len(collector.of("labels"))) == (503, 2, 3)
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        send(client, client.build_request("GET", closed_port_url), Attempts(policy))


async def test_asend_bounds_each_attempt(collector: FakeCollector) -> None:
    collector.script("labels", 200, {"accepted": 0}, delay=5.0, times=2)
    policy = RetryPolicy(max_retries=1, backoff=0.01)
    async with httpx.AsyncClient(base_url=collector.url) as client:
        request = client.build_request("POST", "/v1/labels", json={"labels": []})
        with pytest.raises(TimeoutError):
            await asend(client, request, Attempts(policy), attempt_timeout=0.2)
    assert len(collector.of("labels")) == 2
