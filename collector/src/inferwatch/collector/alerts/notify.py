"""Delivering alert events: one log line each, and webhooks POSTed by a background sender.

``AlertDispatcher.submit`` never waits on the network and may be called from any thread: it logs
the event, then queues one delivery per webhook in a bounded queue (when the queue is full the
oldest delivery is dropped, counted and logged). Worker tasks on the dispatcher's event loop send
them with one ``httpx.AsyncClient``, each attempt bounded by the webhook's timeout, retrying
connection errors, timeouts, 429 and 5xx with the SDK's retry engine (``inferwatch.retry``:
jittered exponential backoff, Retry-After as seconds or an HTTP date); any other answer is final.
Webhook URLs often carry tokens, so logs only ever show their scheme and host.

Send once: events submitted inside ``held()`` (the collector's leader storing a window's
evaluation and alert changes in one fenced transaction) are logged and queued only once the
block ends without an exception, so an event whose alert change was refused or rolled back is
never sent. A delivery retried after a lost answer may reach its receiver twice: every POST
carries an ``Idempotency-Key`` header, the same for every attempt and from whichever replica
(the alert, its event, the window and the alert's change time), for the receiver to drop
repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType

import httpx

from inferwatch.collector.alerts.model import AlertEvent
from inferwatch.collector.alerts.payloads import BUILTIN_NOTIFIERS, Notifier
from inferwatch.collector.settings.alerts import AlertPolicy, Webhook, redact_url
from inferwatch.retry import Attempts, RetryPolicy, asend

logger = logging.getLogger("inferwatch.alerts")

IDEMPOTENCY_HEADER = "Idempotency-Key"
# The events submitted inside this thread's ``held`` block.
_HELD: ContextVar[list[tuple[AlertEvent, AlertPolicy]] | None] = ContextVar("held", default=None)


def idempotency_key(event: AlertEvent) -> str:
    """One alert change's key: alert id, event, window and the time the change was stored."""
    alert = event.alert
    return f"inferwatch-{alert.id}-{event.kind}-{event.window_id}-{alert.updated_ms}"


def log_event(event: AlertEvent) -> None:
    """One structured line per event; the row's message is left out (it may quote data)."""
    alert, result = event.alert, event.result
    fields = {
        "event": event.kind,
        "alert_id": alert.id,
        "model": alert.model,
        "version": alert.version,
        "check": alert.check,
        "severity": alert.severity,
        "state": alert.state,
        "window_id": event.window_id,
        "decision": result.decision,
        "score": result.score,
        "p_value": result.p_value,
        "threshold": result.threshold,
        "features": len(alert.findings),
        "resolution": alert.resolution,
        "acknowledged": alert.acknowledged_ms is not None,
        "notify": event.notify,
    }
    level = logging.INFO if event.kind == "resolved" else logging.WARNING
    logger.log(
        level,
        "alert %s %s",
        event.kind,
        json.dumps(fields, default=str),
        extra={"alert_event": fields},
    )


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    queued: int  # waiting to be sent now
    delivered: int
    failed: int  # given up on: retries exhausted, or an answer not worth retrying
    dropped: int  # pushed out of a full queue, or left over at shutdown
    retries: int


@dataclass(frozen=True, slots=True)
class _Delivery:
    event: AlertEvent
    webhook: Webhook
    retry: RetryPolicy


class AlertDispatcher:
    """The log and webhook sink of ``AlertEngine``.

    ``await start()`` on the event loop that should send, ``submit`` from anywhere, and
    ``await aclose()`` at shutdown (or use ``async with``). ``notifiers`` are the webhook
    formats by name (the built-in ``json`` and ``slack`` when not given); ``base_url`` is the
    collector's public URL, for links to windows.
    """

    def __init__(
        self,
        notifiers: Mapping[str, Notifier] | None = None,
        *,
        base_url: str | None = None,
        queue_size: int = 1000,
        concurrency: int = 4,
    ) -> None:
        if queue_size < 1 or concurrency < 1:
            raise ValueError(
                f"queue_size and concurrency must be at least 1, got {queue_size} and {concurrency}"
            )
        self._notifiers = dict(notifiers if notifiers is not None else BUILTIN_NOTIFIERS)
        self._base_url = base_url
        self._queue_size = queue_size
        self._concurrency = concurrency
        # Guards the queue and counters: submit runs in the caller's thread.
        self._lock = threading.Lock()
        self._pending: deque[_Delivery] = deque()
        self._in_flight = 0
        self._delivered = self._failed = self._dropped = self._retries = 0
        self._webhook_urls: set[str] = set()
        self._redactor = _RedactWebhookUrls(self._webhook_urls)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task[None]] = []

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None:
        """Log ``event`` and queue it for ``policy``'s webhooks (unless a silence holds it
        back); returns at once. Inside ``held``: once the block ends well."""
        held = _HELD.get()
        if held is not None:
            held.append((event, policy))
            return
        log_event(event)
        if not event.notify or not policy.delivers(event.alert.severity):
            return
        for webhook in policy.webhooks:
            self._enqueue(_Delivery(event, webhook, policy.retry.engine()))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold back this thread's submissions until the block ends; drop them if it raises
        (the changes they announce were not stored)."""
        held: list[tuple[AlertEvent, AlertPolicy]] = []
        token = _HELD.set(held)
        try:
            yield
        except BaseException:
            if held:
                logger.warning(
                    "%d alert event(s) not sent: their alert changes were not stored", len(held)
                )
            raise
        finally:
            _HELD.reset(token)
        for event, policy in held:
            self.submit(event, policy)

    @property
    def stats(self) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(
                len(self._pending), self._delivered, self._failed, self._dropped, self._retries
            )

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("the alert dispatcher is already started")
        self._loop = asyncio.get_running_loop()
        # Events bind to the loop that first waits on them: fresh ones for this loop.
        self._ready, self._settled = asyncio.Event(), asyncio.Event()
        self._client = httpx.AsyncClient()
        # httpx logs every request's URL at INFO; keep our webhooks' tokens out of it.
        logging.getLogger("httpx").addFilter(self._redactor)
        self._workers = [
            asyncio.create_task(self._work(), name=f"inferwatch-alert-webhooks-{i}")
            for i in range(self._concurrency)
        ]
        self._ready.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent; False if ``timeout`` s passed first."""
        try:
            async with asyncio.timeout(timeout):
                while self._busy():
                    self._settled.clear()
                    if not self._busy():
                        break
                    await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Give queued deliveries up to ``timeout`` seconds, then stop; the rest is dropped."""
        if self._loop is None:
            return
        await self.drain(timeout)
        with self._lock:
            unsent = len(self._pending) + self._in_flight
            self._pending.clear()
            self._dropped += unsent
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if unsent:
            logger.warning("alert dispatcher stopped with %d deliveries unsent", unsent)
        if self._client is not None:
            await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._redactor)
        self._loop = None

    async def __aenter__(self) -> AlertDispatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _enqueue(self, delivery: _Delivery) -> None:
        dropped: _Delivery | None = None
        with self._lock:
            self._webhook_urls.add(str(httpx.URL(delivery.webhook.url)))
            if len(self._pending) >= self._queue_size:
                dropped = self._pending.popleft()
                self._dropped += 1
            self._pending.append(delivery)
            total_dropped = self._dropped
        if dropped is not None:
            logger.warning(
                "alert delivery queue is full (%d): dropped the oldest delivery (alert %s %s to "
                "%s); %d dropped so far",
                self._queue_size,
                dropped.event.alert.id,
                dropped.event.kind,
                redact_url(dropped.webhook.url),
                total_dropped,
            )
        loop = self._loop
        if loop is not None:
            # RuntimeError: the loop has closed; aclose counted what was left.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._ready.set)

    def _take(self) -> _Delivery | None:
        with self._lock:
            if not self._pending:
                return None
            self._in_flight += 1
            return self._pending.popleft()

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._pending) or self._in_flight > 0

    async def _work(self) -> None:
        while True:
            delivery = self._take()
            if delivery is None:
                # Clear before looking again, so a submit in between is not missed.
                self._ready.clear()
                delivery = self._take()
                if delivery is None:
                    await self._ready.wait()
                    continue
            try:
                await self._send(delivery)
            except Exception:
                with self._lock:
                    self._failed += 1
                logger.exception("delivering alert %s failed", delivery.event.alert.id)
            finally:
                with self._lock:
                    self._in_flight -= 1
                self._settled.set()

    async def _send(self, delivery: _Delivery) -> None:
        assert self._client is not None
        webhook, event = delivery.webhook, delivery.event
        notifier = self._notifiers.get(webhook.format)
        if notifier is None:
            raise ValueError(f"no notifier named {webhook.format!r} is loaded")
        body = notifier.payload(event, self._base_url)
        request = self._client.build_request(
            "POST",
            webhook.url,
            json=body,
            headers={IDEMPOTENCY_HEADER: idempotency_key(event)},
            timeout=webhook.timeout_seconds,
        )
        attempts = Attempts(delivery.retry)
        try:
            response = await asend(
                self._client, request, attempts, attempt_timeout=webhook.timeout_seconds
            )
        except (httpx.TransportError, TimeoutError) as exc:
            # Only the type: some messages repeat the URL.
            reason = type(exc).__name__
        else:
            reason = f"HTTP {response.status_code}"
            if response.is_success:
                with self._lock:
                    self._delivered += 1
                    self._retries += attempts.retries
                return
        with self._lock:
            self._failed += 1
            self._retries += attempts.retries
        logger.warning(
            "gave up delivering alert %s %s to %s after %d attempt(s): %s",
            event.alert.id,
            event.kind,
            redact_url(webhook.url),
            attempts.retries + 1,
            reason,
        )


class _RedactWebhookUrls(logging.Filter):
    """Rewrites the URL in httpx's request log lines when it is one of our webhooks."""

    def __init__(self, urls: set[str]) -> None:
        super().__init__()
        self._urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(
            isinstance(a, httpx.URL) and str(a) in self._urls for a in args
        ):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in args)
        return True
