"""One batch never fails the others: a batch storage cannot keep (a model name SQLite cannot
encode, a start time past what a window's bounds can hold) is refused for good, alone, and the
other batches of its request and of its group commit are stored and answered."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from pathlib import Path

import httpx
import numpy as np
import pytest

from inferwatch import contract
from inferwatch.collector import CollectorConfig, ConfigError, load_config
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.runtime.collector import Collector
from inferwatch.frame import encode_frame
from inferwatch_testkit import FakeClock
from inferwatch_testkit.collector import T0, mixed_frames, start_collector, total_rows

ROWS = 5


def batch(n: int, model: str = "iso") -> PredictionBatch:
    inputs, outputs = mixed_frames(np.random.default_rng(n), ROWS)
    start_ns = int((T0 + 1) * 1e9)
    ids = tuple(f"b{n}-{i}" for i in range(ROWS))
    return PredictionBatch(
        model, "1", "classification", bytes(16), n.to_bytes(8, "big"), start_ns,
        start_ns + 1_000_000, None, ids, inputs, outputs,
    )  # fmt: skip


async def test_a_batch_storage_cannot_keep_is_refused_alone_in_its_group(tmp_path: Path) -> None:
    config = load_config(None, db=f"sqlite:///{tmp_path / 'c.db'}")
    runtime = Collector.build(config, FakeClock(T0))
    await runtime.pipeline.start()
    try:
        far = dataclasses.replace(batch(900), start_ns=10**30, end_ns=10**30 + 1)
        unencodable = batch(901, model="bad\udc80name")
        good = [[batch(n)] for n in range(40)]
        requests = [*good[:10], [far], *good[10:30], [unencodable, batch(902)], *good[30:]]
        # Submitted together, they are committed as one group.
        answers = await asyncio.gather(*(runtime.pipeline.submit(r) for r in requests))
        refused = [i for i, answer in enumerate(answers) if answer]
        assert refused == [10, 31]
        assert all("sending it again will not help" in answers[i][0] for i in refused)
        assert len(answers[31]) == 1  # its request's other batch was stored
        await runtime.pipeline.settle()
        (window,) = runtime.storage.windows.find("iso")
        assert (window.requests, window.rows) == (41, 41 * ROWS)
    finally:
        await runtime.pipeline.stop()
        runtime.storage.close()


def test_a_refused_span_is_answered_200_with_the_rest_stored(tmp_path: Path) -> None:
    now_ns = int(T0 * 1e9)
    spans = [
        otlp_span("0" * 32, "00000000000000aa", now_ns),
        otlp_span("0" * 32, "00000000000000ff", 10**30),  # no window can hold it
    ]
    answer, rows = post_spans(tmp_path, spans)
    assert answer.status_code == 200, answer.text
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert rows == 2


def test_spans_whose_ids_run_together_alike_are_not_taken_for_one(tmp_path: Path) -> None:
    """("aa", "bbcc") and ("aabb", "cc") shared a dedupe key, so the second span was dropped as
    a duplicate. Ids of other lengths than OTLP's are now rejected, each span saying why (the
    storage contract tests check that such keys no longer collide in storage either)."""
    now_ns = int(T0 * 1e9)
    spans = [otlp_span("aa", "bbcc", now_ns), otlp_span("aabb", "cc", now_ns)]
    answer, rows = post_spans(tmp_path, spans)
    assert answer.status_code == 200, answer.text
    partial = answer.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2, partial
    assert "OTLP ids are 16 and 8 bytes" in partial["errorMessage"]
    assert rows == 0


def post_spans(tmp_path: Path, spans: list[dict[str, object]]) -> tuple[httpx.Response, int]:
    """The answer to one OTLP JSON request of ``spans``, and the rows model iso then has."""
    collector = start_collector(CollectorConfig(db=f"sqlite:///{tmp_path / 'c.db'}"))
    try:
        with collector.client() as client:
            answer = client.post("/v1/traces", json=otlp_request(spans))
            return answer, total_rows(client, "iso")
    finally:
        collector.stop()


def otlp_span(trace_id: str, span_id: str, start_ns: int) -> dict[str, object]:
    """An inferwatch span of 2 rows in OTLP JSON (ids in hex, of any length)."""
    inputs, _ = mixed_frames(np.random.default_rng(0), 2)
    frame = base64.b64encode(encode_frame(inputs)).decode()
    attributes = {
        contract.ATTR_SCHEMA_VERSION: {"intValue": str(contract.SCHEMA_VERSION)},
        contract.ATTR_MODEL_NAME: {"stringValue": "iso"},
        contract.ATTR_MODEL_VERSION: {"stringValue": "1"},
        contract.ATTR_ROWS: {"intValue": "2"},
        contract.ATTR_INPUT_FRAME: {"bytesValue": frame},
    }
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": contract.SPAN_NAME,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 1_000_000),
        "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
    }


def otlp_request(spans: list[dict[str, object]]) -> dict[str, object]:
    scope = {"name": contract.INSTRUMENTATION_SCOPE}
    return {"resourceSpans": [{"scopeSpans": [{"scope": scope, "spans": spans}]}]}


@pytest.mark.parametrize("setting", ["window", "allowed_lateness"])
def test_a_window_or_lateness_beyond_a_year_is_refused_naming_the_limit(
    tmp_path: Path, setting: str
) -> None:
    # A window of 1e30 s used to make every span of the model retryable (429) forever.
    with pytest.raises(ConfigError, match=rf"models\.huge.*{setting}.*at most 366 days"):
        load_config(None, db=f"sqlite:///{tmp_path / 'c.db'}", models={"huge": {setting: 1e30}})
    config = load_config(None, models={"year": {setting: "366d"}})
    assert config.model("year").model_dump(by_alias=True)[setting] == 366 * 86400
