"""/healthz names the window evaluation in flight: a check that never returns holds every
model's windows behind it, and its worker thread cannot be stopped, so a user must see it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch.collector import load_config
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, start_collector, windows

# A check that holds its window's evaluation until the test lets it go.
HOLDING_PLUGIN = """
import threading
from inferwatch.collector.detect import CheckSettings, check

entered = threading.Event()
release = threading.Event()


@check("hold", CheckSettings)
def hold(profile, window, settings):
    entered.set()
    release.wait(60)
    return []
"""


@pytest.fixture
def holding_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    name = f"iw_holding_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(HOLDING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(name)
    module = sys.modules[name]
    yield module
    module.release.set()
    sys.modules.pop(name, None)


def health(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/healthz", timeout=10)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_healthz_shows_the_evaluation_in_flight_while_a_check_holds_it(
    holding_plugin: Any, tmp_path: Path, make_sender: Any
) -> None:
    config = load_config(
        None,
        db=f"sqlite:///{tmp_path}/c.db",
        tick_seconds=0.05,
        plugins=[holding_plugin.__name__],
        models={"m": {"window": 60, "allowed_lateness": 0}},
    )
    clock = FakeClock(T0)
    collector = start_collector(config, clock)
    try:
        assert health(collector.url)["evaluating"] is None
        sender = make_sender(collector.url)
        inputs, outputs = mixed_frames(np.random.default_rng(0), 4)
        sender.send("m", "1", int((T0 + 1) * 1e9), inputs, [f"r{i}" for i in range(4)], outputs)
        sender.flush()
        with collector.client() as client:
            (window,) = wait_for(lambda: windows(client, "m"), what="the window")
            clock.advance_to(T0 + 61)
            assert holding_plugin.entered.wait(30), "the check never ran"
            shown = health(collector.url)["evaluating"]
            assert (shown["model"], shown["window_id"]) == ("m", window["id"])
            first = shown["seconds"]
            wait_for(
                lambda: health(collector.url)["evaluating"]["seconds"] > first,
                what="the evaluation's seconds to grow",
            )
            holding_plugin.release.set()
            wait_for(lambda: health(collector.url)["evaluating"] is None, what="the end")
            (done,) = windows(client, "m")
            assert done["closed"] and done["evaluated_at"]
    finally:
        collector.stop()
