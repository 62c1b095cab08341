"""Retrying HTTP requests: whether to try again, and how long to wait first.

    import httpx
    from inferwatch.retry import Attempts, RetryPolicy, send

    policy = RetryPolicy(max_retries=5, backoff=0.5, max_delay=30.0)
    with httpx.Client() as client:
        request = client.build_request("POST", "https://example.com/hook", json={"a": 1})
        response = send(client, request, Attempts(policy))

A request is tried again after a connection error, a timeout, or an answer whose status is in
``policy.retry_statuses`` (429, 502, 503 and 504 by default), at most ``max_retries`` times.
Retry n (0 for the first) waits a random time between half and all of ``backoff * 2**n``
seconds, so that clients that failed together do not come back together, or what the server
asked for in ``Retry-After`` (seconds or an HTTP date); either is capped at ``max_delay``.

``Attempts`` holds the decisions and does no I/O: feed it each outcome and it says how long to
wait, or that the outcome is final. ``send`` and ``asend`` are the blocking and asyncio loops
around it. The SDK's labels and reference clients use it, and so does the collector's alert
webhook sender.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_RETRIES",
    "RETRYABLE_STATUS",
    "Attempts",
    "Outcome",
    "RetryPolicy",
    "asend",
    "parse_retry_after",
    "send",
]

# The statuses of "try again later" (what the collector, like any OTLP receiver, answers when
# overloaded); any other 4xx means the request itself is wrong and would fail again.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_DELAY = 30.0

# What one try comes to: an answer, or no answer (refused, reset, timed out).
Outcome = httpx.Response | httpx.TransportError | TimeoutError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry (see the module's docstring)."""

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_delay: float = DEFAULT_MAX_DELAY
    retry_statuses: frozenset[int] = RETRYABLE_STATUS

    def __post_init__(self) -> None:
        retries = self.max_retries
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {retries!r}")
        for name in ("backoff", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in self.retry_statuses):
            raise ValueError(f"retry_statuses must be HTTP statuses, got {self.retry_statuses!r}")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.backoff * 2.0**retry)
        return random.uniform(ceiling / 2, ceiling)

    def retryable(self, outcome: Outcome) -> bool:
        """Whether trying again could change ``outcome``: no answer, or a retryable status."""
        if isinstance(outcome, httpx.Response):
            return outcome.status_code in self.retry_statuses
        return True


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - current
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class Attempts:
    """The retry state of one request: feed it each outcome, it says whether to wait and retry.

    ``retries`` counts the retries it has allowed so far.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retries = 0

    def after(self, outcome: Outcome) -> float | None:
        """Seconds to wait before trying again after ``outcome``; None when it is final: a
        success, an answer retrying would not change, or a failure with no retry left."""
        if isinstance(outcome, httpx.Response) and outcome.is_success:
            return None
        if not self.policy.retryable(outcome) or self.retries >= self.policy.max_retries:
            return None
        retry_after = None
        if isinstance(outcome, httpx.Response):
            retry_after = parse_retry_after(outcome.headers.get("retry-after"))
        delay = self.policy.delay(self.retries, retry_after)
        self.retries += 1
        return delay


def send(client: httpx.Client, request: httpx.Request, attempts: Attempts) -> httpx.Response:
    """Send ``request`` until ``attempts`` finds an outcome final. Returns that answer, a success
    or not (check it); raises the last error when no try got an answer."""
    while True:
        outcome: Outcome
        try:
            outcome = client.send(request)
        except httpx.TransportError as exc:
            outcome = exc
        delay = attempts.after(outcome)
        if delay is None:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        time.sleep(delay)


async def asend(
    client: httpx.AsyncClient,
    request: httpx.Request,
    attempts: Attempts,
    *,
    attempt_timeout: float | None = None,
) -> httpx.Response:
    """The asyncio twin of ``send``. ``attempt_timeout``: seconds one try may take in all
    (httpx's own timeouts bound each read or write, not a slowly trickling answer); a try cut
    off raises TimeoutError when it is the last."""
    while True:
        outcome: Outcome
        try:
            async with asyncio.timeout(attempt_timeout):
                outcome = await client.send(request)
        except (httpx.TransportError, TimeoutError) as exc:
            outcome = exc
        delay = attempts.after(outcome)
        if delay is None:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        await asyncio.sleep(delay)
