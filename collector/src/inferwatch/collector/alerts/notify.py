"""Delivering alert events: one log line each, and webhooks POSTed by a background sender.

``AlertDispatcher.submit`` never waits on the network: it logs the event and stores one
delivery per webhook in the outbox (``alerts.outbox``), inside the transaction of the alert
change when called inside ``AlertStore.together`` (as ``AlertEngine`` does), so a delivery is
stored if and only if its change is. The outbox is bounded: past ``queue_size`` pending
deliveries the oldest is dropped, counted and logged. The sender, on the dispatcher's event
loop, takes the deliveries due and POSTs them with one ``httpx.AsyncClient``, each attempt
bounded by the webhook's timeout; after connection errors, timeouts, 429 and 5xx the SDK's retry
engine (``inferwatch.retry``: jittered exponential backoff, Retry-After as seconds or an HTTP
date) says when to try again, and the outbox keeps the attempt count and that time, so retries
go on across restarts. Any other answer, or the last retry, is final: the delivery is removed.
Webhook URLs often carry tokens, so logs only ever show their scheme and host.

Only a dispatcher whose ``may_send`` says so sends (on PostgreSQL the leader: replicas share
the outbox); the others store. A collector killed, or a leader that fails over, leaves its
pending deliveries to the next start or the next leader. So a delivery may reach its receiver
twice (an answer lost, a collector killed after sending and before removing it): every POST
carries an ``Idempotency-Key`` header, the same for every attempt and from whichever collector
(the alert, its event, the window and the alert's change time), for the receiver to drop
repeats.

Events submitted inside ``held()`` (the collector's leader storing a window's evaluation and
alert changes in one fenced transaction) are logged, and their deliveries sent, once the block
ends without an exception; an event whose alert change was refused or rolled back took its
deliveries with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType

import httpx

from inferwatch.collector.alerts.model import AlertEvent
from inferwatch.collector.alerts.outbox import Delivery, MemoryOutbox, OutboxStore
from inferwatch.collector.alerts.payloads import BUILTIN_NOTIFIERS, Notifier
from inferwatch.collector.settings.alerts import (
    WEBHOOK_RETRY_STATUSES,
    AlertPolicy,
    Webhook,
    redact_url,
)
from inferwatch.retry import Attempts, Outcome, RetryPolicy

logger = logging.getLogger("inferwatch.alerts")

IDEMPOTENCY_HEADER = "Idempotency-Key"
# How often the sender looks at the outbox without being woken: for deliveries another replica
# stored, and for a leadership taken.
POLL_SECONDS = 1.0
# The events submitted inside this thread's ``held`` block, with the deliveries a dispatcher
# without a database stores once it ends.
_HELD: ContextVar[list[tuple[AlertEvent, list[Delivery]]] | None] = ContextVar("held", default=None)


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
    queued: int  # stored and waiting to be sent (what this collector last saw of the outbox)
    delivered: int
    failed: int  # given up on: retries exhausted, or an answer not worth retrying
    dropped: int  # pushed out of a full outbox, or (without a database) left over at shutdown
    retries: int


class AlertDispatcher:
    """The log and webhook sink of ``AlertEngine``.

    ``await start()`` on the event loop that should send, ``submit`` from anywhere, and
    ``await aclose()`` at shutdown (or use ``async with``). ``notifiers`` are the webhook
    formats by name (the built-in ``json`` and ``slack`` when not given); ``base_url`` is the
    collector's public URL, for links to windows. ``outbox`` is where deliveries wait (the
    database's; in memory when not given, lost with the process); ``queue_size`` bounds it.
    ``may_send`` (which must not block) says whether this collector sends (the leader does).
    """

    def __init__(
        self,
        notifiers: Mapping[str, Notifier] | None = None,
        *,
        base_url: str | None = None,
        queue_size: int = 1000,
        concurrency: int = 4,
        outbox: OutboxStore | None = None,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        if queue_size < 1 or concurrency < 1:
            raise ValueError(
                f"queue_size and concurrency must be at least 1, got {queue_size} and {concurrency}"
            )
        self._notifiers = dict(notifiers if notifiers is not None else BUILTIN_NOTIFIERS)
        self._base_url = base_url
        self._queue_size = queue_size
        self._concurrency = concurrency
        # Without a database's outbox, one in memory: lost with the process.
        self._in_memory: MemoryOutbox | None = None
        if outbox is None:
            outbox = self._in_memory = MemoryOutbox()
        self._outbox = outbox
        self._may_send = may_send
        # Guards the counters and the ids in flight: submit runs in the caller's thread.
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._stored = 0  # rows in the outbox, as last counted and changed here since
        self._delivered = self._failed = self._dropped = self._retries = 0
        self._webhook_urls: set[str] = set()
        self._redactor = _RedactWebhookUrls(self._webhook_urls)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._sender: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None:
        """Store ``event``'s deliveries to ``policy``'s webhooks (unless a silence holds it
        back) and log it; returns at once. Inside ``held``: logged and sent once the block
        ends well."""
        if event.notify and policy.delivers(event.alert.severity):
            deliveries = []
            for webhook in policy.webhooks:
                try:
                    deliveries.append(self._delivery(event, webhook, policy))
                except Exception:
                    # A notifier not loaded, or broken: the other webhooks still get theirs.
                    with self._lock:
                        self._failed += 1
                    logger.exception(
                        "alert %s cannot be sent to %s", event.alert.id, redact_url(webhook.url)
                    )
        else:
            deliveries = []
        held = _HELD.get()
        if held is not None:
            if self._in_memory is None:
                # Into the transaction the block's changes are stored in: kept if they are.
                self._store(deliveries)
                deliveries = []
            held.append((event, deliveries))
            return
        self._store(deliveries)
        log_event(event)
        self._wake_sender()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold back this thread's submissions until the block ends; if it raises, their
        changes and deliveries were not stored: say so instead."""
        held: list[tuple[AlertEvent, list[Delivery]]] = []
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
        for event, deliveries in held:
            self._store(deliveries)
            log_event(event)
        if held:
            self._wake_sender()

    @property
    def stats(self) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(
                max(0, self._stored - len(self._in_flight)),
                self._delivered,
                self._failed,
                self._dropped,
                self._retries,
            )

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("the alert dispatcher is already started")
        self._loop = asyncio.get_running_loop()
        # Events bind to the loop that first waits on them: fresh ones for this loop.
        self._wake, self._settled = asyncio.Event(), asyncio.Event()
        self._client = httpx.AsyncClient()
        # httpx logs every request's URL at INFO; keep our webhooks' tokens out of it.
        logging.getLogger("httpx").addFilter(self._redactor)
        self._sender = asyncio.create_task(self._send_due(), name="inferwatch-alert-webhooks")

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is stored (for this collector to send) or being sent; False if
        ``timeout`` s passed first."""
        try:
            async with asyncio.timeout(timeout):
                while await self._busy():
                    self._settled.clear()
                    # Woken by a send ending; the timeout for deliveries another replica sends.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_SECONDS):
                            await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Give pending deliveries up to ``timeout`` seconds, then stop. What is left stays in
        a database's outbox for the next start; without one, it is dropped."""
        if self._loop is None:
            return
        await self.drain(timeout)
        tasks = [t for t in (self._sender, *self._sends) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sender = None
        self._sends.clear()
        with self._lock:
            self._in_flight.clear()
        if self._in_memory is not None:
            unsent = self._in_memory.clear()
            with self._lock:
                self._dropped += unsent
                self._stored = 0
            if unsent:
                logger.warning("alert dispatcher stopped with %d deliveries unsent", unsent)
        else:
            left = await asyncio.to_thread(self._outbox.count)
            if left:
                logger.info("%d alert deliveries stay in the outbox for the next start", left)
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

    def _delivery(self, event: AlertEvent, webhook: Webhook, policy: AlertPolicy) -> Delivery:
        notifier = self._notifiers.get(webhook.format)
        if notifier is None:
            raise ValueError(f"no notifier named {webhook.format!r} is loaded")
        alert_id = event.alert.id
        assert alert_id is not None, "an event is of a stored alert"
        retry = policy.retry.engine()
        return Delivery(
            key=idempotency_key(event),
            alert_id=alert_id,
            event=event.kind,
            url=webhook.url,
            body=json.dumps(notifier.payload(event, self._base_url)),
            timeout_seconds=webhook.timeout_seconds,
            max_retries=retry.max_retries,
            backoff_seconds=retry.backoff,
            max_backoff_seconds=retry.max_delay,
            due_ms=_now_ms(),
        )

    def _store(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        with self._lock:
            sparing = set(self._in_flight)
        dropped = self._outbox.add(deliveries, self._queue_size, sparing)
        with self._lock:
            self._stored += len(deliveries) - len(dropped)
            self._dropped += len(dropped)
            total_dropped = self._dropped
        for delivery in dropped:
            logger.warning(
                "alert delivery queue is full (%d): dropped the oldest delivery (alert %s %s to "
                "%s); %d dropped so far",
                self._queue_size,
                delivery.alert_id,
                delivery.event,
                redact_url(delivery.url),
                total_dropped,
            )

    def _wake_sender(self) -> None:
        loop = self._loop
        if loop is not None:
            # RuntimeError: the loop has closed; the outbox keeps what it holds.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    async def _busy(self) -> bool:
        with self._lock:
            if self._in_flight:
                return True
        # What another collector sends is not this one's to wait for.
        return self._may_send() and await asyncio.to_thread(self._outbox.count) > 0

    async def _send_due(self) -> None:
        """Until cancelled: send what is due, then sleep until the next is, or a wake-up."""
        while True:
            self._wake.clear()
            wait = POLL_SECONDS
            try:
                wait = await self._start_due()
            except Exception:
                # The database unavailable, or a bug: the deliveries wait in the outbox.
                logger.exception("reading the alert outbox failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _start_due(self) -> float:
        """Start sending the deliveries due, as many as may be in flight; the seconds until the
        next one is due (at most POLL_SECONDS)."""
        stored = await asyncio.to_thread(self._outbox.count)
        with self._lock:
            self._stored = stored
            free = self._concurrency - len(self._in_flight)
            excluding = set(self._in_flight)
        if free <= 0 or not self._may_send():
            return POLL_SECONDS
        pending = await asyncio.to_thread(self._outbox.pending, free, excluding)
        now_ms = _now_ms()
        wait = POLL_SECONDS
        for delivery in pending:
            assert delivery.id is not None
            if delivery.due_ms > now_ms:
                wait = min(wait, (delivery.due_ms - now_ms) / 1000)
                continue
            with self._lock:
                self._in_flight.add(delivery.id)
            task = asyncio.create_task(self._attempt(delivery))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        return wait

    async def _attempt(self, delivery: Delivery) -> None:
        assert delivery.id is not None
        try:
            await self._try_once(delivery, delivery.id)
        except Exception:
            # The outbox unavailable: the delivery waits there for the next round.
            logger.exception("delivering alert %s failed", delivery.alert_id)
        finally:
            with self._lock:
                self._in_flight.discard(delivery.id)
            self._settled.set()
            self._wake.set()

    async def _try_once(self, delivery: Delivery, delivery_id: int) -> None:
        assert self._client is not None
        with self._lock:
            self._webhook_urls.add(str(httpx.URL(delivery.url)))
        request = self._client.build_request(
            "POST",
            delivery.url,
            content=delivery.body.encode(),
            headers={"content-type": "application/json", IDEMPOTENCY_HEADER: delivery.key},
            timeout=delivery.timeout_seconds,
        )
        outcome: Outcome
        try:
            # httpx's timeouts bound each read or write, not a slowly trickling answer.
            async with asyncio.timeout(delivery.timeout_seconds):
                outcome = await self._client.send(request)
        except (httpx.TransportError, TimeoutError) as exc:
            outcome = exc
        attempts = Attempts(
            RetryPolicy(
                max_retries=delivery.max_retries,
                backoff=delivery.backoff_seconds,
                max_delay=delivery.max_backoff_seconds,
                retry_statuses=WEBHOOK_RETRY_STATUSES,
            )
        )
        attempts.retries = delivery.attempts
        delay = attempts.after(outcome)
        if delay is not None:
            due_ms = _now_ms() + int(delay * 1000)
            await asyncio.to_thread(
                self._outbox.retry_at, delivery_id, delivery.attempts + 1, due_ms
            )
            with self._lock:
                self._retries += 1
            return
        removed = await asyncio.to_thread(self._outbox.remove, delivery_id)
        with self._lock:
            self._stored -= removed
        if isinstance(outcome, httpx.Response) and outcome.is_success:
            with self._lock:
                self._delivered += 1
            return
        with self._lock:
            self._failed += 1
        # Only the type of an error: some messages repeat the URL.
        reason = (
            f"HTTP {outcome.status_code}"
            if isinstance(outcome, httpx.Response)
            else type(outcome).__name__
        )
        logger.warning(
            "gave up delivering alert %s %s to %s after %d attempt(s): %s",
            delivery.alert_id,
            delivery.event,
            redact_url(delivery.url),
            delivery.attempts + 1,
            reason,
        )


def _now_ms() -> int:
    # The wall clock: a due time outlives the process, and may be read by another replica.
    return int(time.time() * 1000)


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
