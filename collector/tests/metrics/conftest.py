"""The scenario the metrics tests read: known windows of two models in a real collector."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferwatch.collector import CollectorConfig, load_config
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import (
    T0,
    RunningCollector,
    SpanSender,
    start_collector,
    total_rows,
    windows,
)

from .helpers import (
    CHURN,
    CREDIT,
    ROWS,
    WINDOW,
    WINE,
    Series,
    columns,
    scored,
    send_scored_window,
    send_window,
    upload_reference,
    upload_scored_reference,
)

# Alerts open on the first failing window, so that the one shifted window opens some.
MODELS = {
    name: {
        "window": WINDOW,
        "allowed_lateness": 5,
        "reference": {"policy": "none"},
        "alerts": {"consecutive": 1},
    }
    for name in (WINE, CHURN, CREDIT)
}


def config(db: Path, **overrides: Any) -> CollectorConfig:
    settings = {"tick_seconds": 0.05, "checkpoint_interval_seconds": 0.2, **overrides}
    return load_config(None, db=f"sqlite:///{db}", models=MODELS, **settings)


@dataclass
class Scenario:
    db: Path
    clock: FakeClock
    collector: RunningCollector
    # Window 1's rows of wine that have no label.
    unlabelled: list[str]
    # credit's window 0: its row ids and labels, none of them sent yet.
    credit_labels: dict[str, str] = field(default_factory=dict)
    # The model series scraped before any restart.
    first: Series | None = None

    def restart(self, **overrides: Any) -> None:
        self.collector.stop()
        self.collector = start_collector(config(self.db, **overrides), self.clock)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """wine: a reference, a clean window then a shifted one with half its rows labelled; churn:
    one window and no reference; credit: a reference with probabilities and labels, and one
    window without labels, whose performance is estimated. All closed and evaluated."""
    clock = FakeClock(T0)
    db = tmp_path_factory.mktemp("metrics") / "collector.db"
    run = Scenario(db, clock, start_collector(config(db), clock), [])
    sender = SpanSender(run.collector.url)
    rng = np.random.default_rng(11)
    try:
        upload_reference(run.collector.url, rng)
        send_window(sender, WINE, 0, columns(rng, ROWS), "w0")
        shifted = columns(rng, ROWS, shift=0.8)
        ids = send_window(sender, WINE, 1, shifted, "w1")
        run.unlabelled = ids[ROWS // 2 :]
        send_window(sender, CHURN, 0, columns(rng, ROWS), "c0")
        upload_scored_reference(run.collector.url, rng)
        x, proba, labels = scored(rng, ROWS)
        scored_ids = send_scored_window(sender, 0, x, proba, "k0")
        run.credit_labels = dict(zip(scored_ids, labels.tolist(), strict=True))
        sender.flush()
        with run.collector.client() as client:
            wait_for(lambda: total_rows(client, WINE) == 2 * ROWS, what="wine's rows")
            wait_for(lambda: total_rows(client, CHURN) == ROWS, what="churn's rows")
            wait_for(lambda: total_rows(client, CREDIT) == ROWS, what="credit's rows")
            # Labels a while after the predictions, so that their delay is known: 80 s after
            # the first batch of window 1.
            clock.advance_to(T0 + 2 * WINDOW + 21)
            labels = [{"prediction_id": i, "label": "yes"} for i in ids[: ROWS // 2]]
            response = client.post("/v1/labels", json={"model": WINE, "labels": labels})
            assert response.status_code == 200, response.text
            clock.advance_to(T0 + 2 * WINDOW + 30)
            for model, count in ((WINE, 2), (CHURN, 1), (CREDIT, 1)):
                wait_for(
                    lambda m=model, n=count: (
                        len([w for w in windows(client, m) if w["evaluated_at"]]) == n
                    ),
                    timeout=60,
                    what=f"{model}'s windows evaluated",
                )
        yield run
    finally:
        sender.close()
        run.collector.stop()
