"""At interpreter exit the SDK flushes within a short timeout, collector up or down."""

from __future__ import annotations

import subprocess
import sys
import time

from inferwatch_testkit import closed_port
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

SCRIPT = """
import sys
import inferwatch

inferwatch.init(endpoint=sys.argv[1], export_timeout=30.0, flush_interval=60.0)

@inferwatch.monitor(model="exit-test")
def predict(row):
    return 1.0

for i in range(3):
    predict({"a": float(i)})
print("done", flush=True)
"""

EXIT_TIMEOUT = 2.0  # inferwatch.export.EXIT_TIMEOUT


def run(endpoint: str) -> tuple[float, float]:
    """(seconds from the script's last line to its exit, total run time)."""
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, endpoint], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "done"
    done = time.monotonic()
    assert process.wait(timeout=60) == 0
    end = time.monotonic()
    return end - done, end - start


def test_exit_with_the_collector_down_takes_at_most_the_exit_timeout() -> None:
    after_last_line, _ = run(closed_port())
    assert after_last_line < EXIT_TIMEOUT + 1.5


def test_spans_recorded_just_before_exit_are_delivered(receiver: Receiver) -> None:
    # The flush interval is a minute: only the exit hook can have sent these.
    run(receiver.url)
    spans = [s for s in receiver.spans if s.attributes.get("ml.model.name") == "exit-test"]
    assert len(spans) == 3
