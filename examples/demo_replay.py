"""Replay the scenario's traffic through the BentoML HTTP API, and send the labels later.

Windows are aligned to multiples of their length since the epoch, so the replay starts on a
window boundary and keeps clear of the boundaries (a margin each side) so that every request of
a scenario window lands in the collector's window of the same phase.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import numpy as np
from demo_traffic import Phase, Traffic, phase_of, total_windows

import inferwatch


@dataclass(frozen=True)
class Schedule:
    """When each scenario window runs: window ``n`` covers ``[(first + n) * length, +length)``."""

    window_seconds: float
    first: int
    windows: int
    requests: int
    rows: int

    @classmethod
    def starting_after(
        cls, now: float, window_seconds: float, requests: int, rows: int, lead: float = 0.5
    ) -> Schedule:
        """The first window boundary at least ``lead`` seconds after ``now``."""
        first = int((now + lead) // window_seconds) + 1
        return cls(window_seconds, first, total_windows(), requests, rows)

    @property
    def margin(self) -> float:
        return min(0.4, self.window_seconds * 0.08)

    def start(self, number: int) -> float:
        return (self.first + number) * self.window_seconds

    def end(self, number: int) -> float:
        return self.start(number + 1)

    def number_of(self, start_seconds: float) -> int | None:
        """The scenario window starting at ``start_seconds``, or None for another window."""
        number = round(start_seconds / self.window_seconds) - self.first
        return number if 0 <= number < self.windows else None

    def send_times(self, number: int) -> np.ndarray:
        usable = self.window_seconds - 2 * self.margin
        return self.start(number) + self.margin + np.arange(self.requests) * usable / self.requests


@dataclass
class WindowLedger:
    """What was sent in one scenario window, to compare with what the collector found."""

    phase: Phase
    rows: int = 0
    requests_failed: int = 0
    requests_skipped: int = 0
    ids: list[str] = field(default_factory=list)
    outlier_ids: list[str] = field(default_factory=list)
    # Prediction id -> the class the service answered, and -> the label chosen to be sent.
    predictions: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    labels_sent: int = 0
    last_label_at: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.phase.name,
            "rows": self.rows,
            "requests_failed": self.requests_failed,
            "requests_skipped": self.requests_skipped,
            "outlier_ids": self.outlier_ids,
            "predictions": self.predictions,
            "labels": self.labels,
            "labels_sent": self.labels_sent,
        }


@dataclass(frozen=True)
class PendingLabels:
    due: float
    number: int
    labels: dict[str, int]


class Replay:
    """Sends each scenario window's requests on time; queues their labels for later."""

    def __init__(
        self,
        service_url: str,
        traffic: Traffic,
        schedule: Schedule,
        *,
        label_delay: float,
        label_share: float,
        seed: int,
    ) -> None:
        self.service_url = service_url
        self.traffic = traffic
        self.schedule = schedule
        self.label_delay = label_delay
        self.label_share = label_share
        self.ledger = [WindowLedger(phase_of(n)) for n in range(schedule.windows)]
        self._rng = np.random.default_rng(seed)
        self._pending: deque[PendingLabels] = deque()
        self._sending_done = asyncio.Event()

    async def send_all(self) -> None:
        try:
            async with httpx.AsyncClient(base_url=self.service_url, timeout=10.0) as client:
                for number in range(self.schedule.windows):
                    await self._send_window(client, number)
        finally:
            self._sending_done.set()

    async def _send_window(self, client: httpx.AsyncClient, number: int) -> None:
        ledger = self.ledger[number]
        batches = self.traffic.window(
            ledger.phase, number, self.schedule.requests, self.schedule.rows
        )
        latest = self.schedule.end(number) - self.schedule.margin
        for batch, at in zip(batches, self.schedule.send_times(number), strict=True):
            await asyncio.sleep(max(0.0, at - time.time()))
            if time.time() >= latest:
                # Behind schedule (a slow machine): the request would land in the next window.
                ledger.requests_skipped += 1
                continue
            try:
                response = await client.post(
                    "/classify", json={"input_data": batch.features.tolist()}
                )
            except httpx.TransportError:
                ledger.requests_failed += 1
                continue
            header = response.headers.get("x-prediction-ids", "")
            ids = header.split(",") if header else []
            if response.status_code != 200 or len(ids) != len(batch.labels):
                ledger.requests_failed += 1
                continue
            ledger.rows += len(ids)
            ledger.ids.extend(ids)
            answer = response.json()["prediction"]
            ledger.predictions.update(zip(ids, map(int, answer), strict=True))
            ledger.outlier_ids.extend(i for i, hit in zip(ids, batch.outlier, strict=True) if hit)
            chosen = self._rng.random(len(ids)) < self.label_share
            labels = {
                i: int(y) for i, y, keep in zip(ids, batch.labels, chosen, strict=True) if keep
            }
            ledger.labels.update(labels)
            self._pending.append(PendingLabels(time.time() + self.label_delay, number, labels))

    async def post_labels(self, endpoint: str, model: str) -> None:
        """Send the labels that are due, every quarter second, until everything is sent."""
        while not (self._sending_done.is_set() and not self._pending):
            now = time.time()
            due: list[PendingLabels] = []
            while self._pending and self._pending[0].due <= now:
                due.append(self._pending.popleft())
            if due:
                labels = {k: v for item in due for k, v in item.labels.items()}
                await inferwatch.alog_labels(model, labels, endpoint=endpoint)
                sent_at = time.time()
                for item in due:
                    ledger = self.ledger[item.number]
                    ledger.labels_sent += len(item.labels)
                    ledger.last_label_at = sent_at
            await asyncio.sleep(0.25)
