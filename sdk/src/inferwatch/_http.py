"""Calling the collector, shared by the labels and reference clients: the errors they raise,
what a collector's answer says, and retries (``inferwatch.retry``) that end in those errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx

from inferwatch.retry import Attempts, Outcome, RetryPolicy

DEFAULT_TIMEOUT = 10.0


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


RejectedFactory = Callable[[int, str], CollectorError]


class CollectorAttempts(Attempts):
    """Attempts at one request to the collector that raise when the outcome is a failure.

    ``rejected(status, message)`` builds the exception for an answer not worth retrying, so
    each client can raise its own type saying which of its requests failed; running out of
    retries raises CollectorUnavailable.
    """

    def __init__(
        self, policy: RetryPolicy, what: str, url: str, rejected: RejectedFactory | None = None
    ) -> None:
        super().__init__(policy)
        self.what = what
        self.url = url
        self._rejected = rejected

    def after(self, outcome: Outcome) -> float | None:
        """None when ``outcome`` is a success; else the delay before retrying. Raises when final."""
        delay = super().after(outcome)
        if delay is not None:
            return delay
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:
                return None
            status: int | None = outcome.status_code
            message = error_message(outcome)
            if not self.policy.retryable(outcome):
                raise self._reject(outcome.status_code, message)
            failure = f"HTTP {status}: {message}"
        else:
            status = None
            failure = f"{type(outcome).__name__}: {outcome}" if str(outcome) else repr(outcome)
        error = CollectorUnavailable(
            f"could not send {self.what} to the collector at {self.url}: "
            f"{self.retries + 1} attempts failed, the last with {failure}",
            status,
        )
        if isinstance(outcome, Exception):
            raise error from outcome
        raise error

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
