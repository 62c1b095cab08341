"""The README quickstart's own code blocks, run as written against a real collector: the
monitored calls and the reference they upload agree, so no window raises a schema alert, and a
reference uploaded without predictions (they are optional) raises none for the outputs."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import inferwatch
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import RunningCollector, windows
from inferwatch_testkit.docs import python_blocks

README = Path(__file__).resolve().parents[3] / "README.md"
README_ENDPOINT = "http://127.0.0.1:4318"
CALLS, ROWS = 4, 200


def quickstart_blocks() -> list[str]:
    """The quickstart section's Python blocks, but the BentoML one."""
    text = README.read_text()
    section = text[text.index("## Five-minute quickstart") :]
    section = section[: section.index("\n## ", 1)]
    return [b.code for b in python_blocks(section) if "middleware" not in b.code]


@pytest.fixture
def sdk() -> Iterator[None]:
    yield
    inferwatch.shutdown()


def run_quickstart(
    collector: RunningCollector, rng: np.random.Generator, *, with_predictions: bool
) -> None:
    """The blocks in their order, then more calls in windows opened once the reference is in
    (a window opened before its reference has nothing to compare its columns with)."""
    x_train = rng.normal(size=(2000, 3))
    y_train = (x_train[:, 0] + rng.normal(size=2000) > 0).astype(int)
    model = LogisticRegression().fit(x_train, y_train)
    namespace: dict[str, Any] = {
        "model": model,
        "X_train": x_train,
        "batch": rng.normal(size=(ROWS, 3)),
    }
    blocks = quickstart_blocks()
    assert len(blocks) == 3, blocks  # monitor, reference, labels
    monitor, reference, labels = blocks
    exec(monitor.replace(README_ENDPOINT, collector.url), namespace)
    if not with_predictions:
        reference = re.sub(r"\n\s*predictions=.*,", "", reference)
        assert "predictions" not in reference
    exec(reference, namespace)
    after = math.ceil(time.time())
    wait_for(lambda: time.time() >= after, what="the next window")
    for _ in range(CALLS):
        namespace["predict"](rng.normal(size=(ROWS, 3)))
    ids = inferwatch.last_prediction_ids()
    namespace["prediction_id"], namespace["other_id"] = ids[0], ids[1]
    exec(labels, namespace)
    assert inferwatch.flush(30)


def evaluated(collector: RunningCollector, clock: FakeClock) -> list[dict[str, Any]]:
    with collector.client() as client:
        wait_for(
            lambda: sum(w["rows"] for w in windows(client, "credit")) == (CALLS + 1) * ROWS,
            what="every row",
        )
        clock.advance_to(time.time() + 10)
        found = wait_for(
            lambda: (w := windows(client, "credit")) and all(x["evaluated_at"] for x in w) and w,
            what="the windows' evaluations",
        )
        return [client.get(f"/v1/models/credit/windows/{w['id']}").json() for w in found]


@pytest.mark.parametrize("with_predictions", [True, False])
def test_the_quickstart_raises_no_schema_alert(
    make_collector: Callable[..., RunningCollector], sdk: None, with_predictions: bool
) -> None:
    # The spans carry the wall-clock time; one-second windows close when the FakeClock moves.
    clock = FakeClock(time.time())
    models = {"credit": {"window": 1, "allowed_lateness": 0, "reference": {"policy": "none"}}}
    collector = make_collector(clock, models=models)
    run_quickstart(collector, np.random.default_rng(1), with_predictions=with_predictions)
    details = evaluated(collector, clock)
    results = [r for d in details for r in d["results"]]
    schema = [r for r in results if r["detector"] == "schema"]
    assert [r for r in schema if r["decision"] != "ok"] == [], schema
    tested = {r["feature"] for r in results if r["detector"] == "prediction_drift" and r["feature"]}
    if with_predictions:
        # Every output column of the calls has its reference: all are tested.
        assert tested == {"prediction", "proba[0]", "proba[1]"}
    else:
        assert tested == set()
    # The windows after the upload had the reference's columns to compare with.
    assert any(d["summary"]["reference"] for d in details), details
