"""Small helpers shared by the collector tests."""

from __future__ import annotations

import threading
from typing import Any

import httpx

# A multiple of 60 s: 2023-11-14T22:14:00Z.
T0 = 1_700_000_040.0


class FakeClock:
    """The collector's clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance_to(self, now: float) -> None:
        with self._lock:
            self.now = now


def windows(client: httpx.Client, model: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{model}/windows", params=params)
    assert response.status_code == 200, response.text
    windows: list[dict[str, Any]] = response.json()["windows"]
    return windows


def total_rows(client: httpx.Client, model: str) -> int:
    return sum(w["rows"] for w in windows(client, model))
