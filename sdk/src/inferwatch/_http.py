"""Calling the collector with retries, shared by the labels and reference clients.

The decisions (what to retry, how long to wait, what to raise) live in ``Attempts``, which does
no I/O, so the blocking ``send`` and the asyncio ``asend`` are only the few lines that do.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx

# The statuses the collector (like any OTLP receiver) uses for "try again later"; every other
# 4xx means the request itself is wrong and would fail again.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF = 0.5


class CollectorError(Exception):
    """A request to the collector failed; the message says which request and why."""


class RequestRejected(CollectorError):
    """The collector refused a request (a 4xx other than 429): sending it again would not help.

    ``status`` is the HTTP status and ``message`` what the collector said about it.
    """

    def __init__(
        self, status: int, message: str, *, what: str = "a request", url: str = ""
    ) -> None:
        self.status = status
        self.message = message
        where = f" at {url}" if url else ""
        super().__init__(f"the collector{where} rejected {what} with HTTP {status}: {message}")


class CollectorUnavailable(CollectorError, ConnectionError):
    """The collector could not be reached, or kept answering 429/5xx, through every retry.

    ``status`` is the last HTTP status, or None when no answer came (refused, timed out).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    The n-th retry waits a random time between half and all of ``backoff * 2**n`` seconds
    (jitter spreads out clients that failed together), or what the collector asked for in
    ``Retry-After``; either is capped at ``max_delay``.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("backoff", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.backoff * 2.0**retry)
        return random.uniform(ceiling / 2, ceiling)


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


Outcome = httpx.Response | httpx.TransportError
RejectedFactory = Callable[[int, str], CollectorError]


class Attempts:
    """The retry state of one request: feed it each outcome, it says whether to wait and retry.

    ``rejected(status, message)`` builds the exception for a non-retryable answer, so each
    client can raise its own type saying which of its requests failed.
    """

    def __init__(
        self, policy: RetryPolicy, what: str, url: str, rejected: RejectedFactory | None = None
    ) -> None:
        self.policy = policy
        self.what = what
        self.url = url
        self.retries = 0
        self._rejected = rejected

    def after(self, outcome: Outcome) -> float | None:
        """None when ``outcome`` is a success; else the delay before retrying. Raises when final."""
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:
                return None
            status = outcome.status_code
            message = error_message(outcome)
            if status not in RETRYABLE_STATUS:
                raise self._reject(status, message)
            retry_after = parse_retry_after(outcome.headers.get("retry-after"))
            failure = f"HTTP {status}: {message}"
        else:
            status, retry_after = None, None
            failure = f"{type(outcome).__name__}: {outcome}" if str(outcome) else repr(outcome)
        if self.retries >= self.policy.max_retries:
            error = CollectorUnavailable(
                f"could not send {self.what} to the collector at {self.url}: "
                f"{self.retries + 1} attempts failed, the last with {failure}",
                status,
            )
            if isinstance(outcome, httpx.TransportError):
                raise error from outcome
            raise error
        delay = self.policy.delay(self.retries, retry_after)
        self.retries += 1
        return delay

    def _reject(self, status: int, message: str) -> CollectorError:
        if self._rejected is not None:
            return self._rejected(status, message)
        return RequestRejected(status, message, what=self.what, url=self.url)


def error_message(response: httpx.Response) -> str:
    """What the collector said: its ``{"error": ...}`` text, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    text = response.text.strip()
    if not text:
        return response.reason_phrase or "no message"
    return text if len(text) <= 500 else text[:500] + "..."


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object a successful answer carries; CollectorError if it is something else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CollectorError(
            f"the collector at {response.request.url} answered {what} with HTTP "
            f"{response.status_code} but not the JSON object the API promises: "
            f"{response.text[:200]!r}"
        )
    return body


def client_options(endpoint: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    """Options for httpx.Client / httpx.AsyncClient talking to the collector at ``endpoint``."""
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    headers = {"User-Agent": "inferwatch-sdk"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return {"base_url": endpoint, "headers": headers, "timeout": httpx.Timeout(timeout)}


def send(client: httpx.Client, request: httpx.Request, attempts: Attempts) -> httpx.Response:
    """Send ``request`` until it succeeds; raises what ``attempts`` decides when it cannot."""
    while True:
        outcome: Outcome
        try:
            outcome = client.send(request)
        except httpx.TransportError as exc:
            outcome = exc
        delay = attempts.after(outcome)
        if delay is None:
            return cast(httpx.Response, outcome)
        time.sleep(delay)


async def asend(
    client: httpx.AsyncClient, request: httpx.Request, attempts: Attempts
) -> httpx.Response:
    """The asyncio twin of ``send``."""
    while True:
        outcome: Outcome
        try:
            outcome = await client.send(request)
        except httpx.TransportError as exc:
            outcome = exc
        delay = attempts.after(outcome)
        if delay is None:
            return cast(httpx.Response, outcome)
        await asyncio.sleep(delay)
