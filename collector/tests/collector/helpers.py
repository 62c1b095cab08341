"""Small helpers shared by the collector tests."""

from __future__ import annotations

from typing import Any

import httpx

# A multiple of 60 s: 2023-11-14T22:14:00Z.
T0 = 1_700_000_040.0


def windows(client: httpx.Client, model: str, **params: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/models/{model}/windows", params=params)
    assert response.status_code == 200, response.text
    windows: list[dict[str, Any]] = response.json()["windows"]
    return windows


def total_rows(client: httpx.Client, model: str) -> int:
    return sum(w["rows"] for w in windows(client, model))
