"""OTLP/JSON requests of inferwatch spans with fresh span ids, built cheaply enough to flood a
collector from a few processes: the frame is encoded once, each request only numbers its spans."""

from __future__ import annotations

import base64
import itertools
import json
import os
import time

import numpy as np

from inferwatch import contract
from inferwatch.frame import Frame, encode_frame, numeric

FEATURES = 10


class Requests:
    """Requests of ``spans`` spans of ``rows`` rows each for ``model``, all span ids distinct
    (a per-process prefix and a counter), stamped with the current time."""

    def __init__(self, model: str, spans: int, rows: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        frame = Frame(rows, (numeric("x", rng.normal(size=(rows, FEATURES))),))
        self.model = model
        self.spans = spans
        self.rows = rows
        self._frame = base64.b64encode(encode_frame(frame)).decode()
        self._prefix = f"{os.getpid() % 2**24:06x}{seed % 256:02x}"
        self._counter = itertools.count()

    def next(self) -> bytes:
        now_ns = time.time_ns()
        spans = []
        for _ in range(self.spans):
            n = next(self._counter)
            attributes = {
                contract.ATTR_SCHEMA_VERSION: {"intValue": str(contract.SCHEMA_VERSION)},
                contract.ATTR_MODEL_NAME: {"stringValue": self.model},
                contract.ATTR_MODEL_VERSION: {"stringValue": "1"},
                contract.ATTR_TASK: {"stringValue": "regression"},
                contract.ATTR_ROWS: {"intValue": str(self.rows)},
                contract.ATTR_INPUT_FRAME: {"bytesValue": self._frame},
            }
            spans.append(
                {
                    "traceId": f"{self._prefix}{n:024x}",
                    "spanId": f"{self._prefix}{n:08x}",
                    "name": contract.SPAN_NAME,
                    "startTimeUnixNano": str(now_ns),
                    "endTimeUnixNano": str(now_ns + 1_000_000),
                    "attributes": [{"key": k, "value": v} for k, v in attributes.items()],
                }
            )
        scope = {"name": contract.INSTRUMENTATION_SCOPE}
        body = {"resourceSpans": [{"scopeSpans": [{"scope": scope, "spans": spans}]}]}
        return json.dumps(body).encode()


HEADERS = {"content-type": "application/json"}
