"""The journal keeps a batch exactly as it came, whatever its ids hold."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from inferwatch.collector.ingest.journal import decode_batch, encode_batch
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.frame import Frame, categorical, encode_frame, numeric


def test_batches_round_trip_with_any_ids() -> None:
    rng = np.random.default_rng(2)
    # Non-ASCII, empty, and a lone surrogate (which OTLP JSON's \ud800 escape can carry).
    ids = ("019b76da-a800-7000-8000-0064cdab8924", "é€😀", "", "a\ud800b", 'x,y"z')
    inputs = Frame(5, (numeric("f", rng.normal(size=(5, 3))), categorical("c", list("abaab"))))
    outputs = Frame(5, (numeric("score", rng.random(5), role="output"),))
    batch = PredictionBatch(
        "m", "v1", "regression", bytes(range(16)), bytes(8), 10, 20, "ValueError", ids, inputs,
        outputs, 0.5, ("an issue",),
    )  # fmt: skip
    for encoded_outputs in (None, encode_frame(outputs)):
        again = decode_batch(encode_batch(batch, encoded_outputs))
        assert replace(again, inputs=None, outputs=None) == replace(
            batch, inputs=None, outputs=None
        )
        assert again.inputs is not None and again.outputs is not None
        assert encode_frame(again.inputs) == encode_frame(inputs)
        assert encode_frame(again.outputs) == encode_frame(outputs)
    bare = PredictionBatch("m", "1", None, bytes(16), bytes(8), 0, 0, None, (), None, None)
    assert decode_batch(encode_batch(bare)) == bare
