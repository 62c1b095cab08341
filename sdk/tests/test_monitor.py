"""@inferwatch.monitor: the call is unchanged, one span per call, ids, errors, async, methods."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pytest
from sdk_frames import SpansOf, block, frame_at, labels, numbers

import inferwatch
from inferwatch.frame import decode_frame
from inferwatch_testkit.otlp import OTLPReceiver as Receiver


class ModelFailed(Exception):
    pass


def test_before_init_the_function_runs_and_nothing_is_recorded(model: str) -> None:
    result = object()
    calls = []

    @inferwatch.monitor(model=model)
    def predict(x: object) -> object:
        calls.append(x)
        return result

    before = inferwatch.stats()
    assert predict({"a": 1}) is result
    assert calls == [{"a": 1}]
    assert inferwatch.last_prediction_ids() == []
    assert inferwatch.stats() == before


def test_return_value_is_the_same_object(live: Receiver, model: str, spans_of: SpansOf) -> None:
    result = np.array([0.5, 0.25])

    @inferwatch.monitor(model=model, version="3", task="regression")
    def predict(x: np.ndarray) -> np.ndarray:
        return result

    assert predict(np.zeros((2, 3))) is result
    (span,) = spans_of(model)
    assert span.name == "inferwatch.predict" and span.scope == "inferwatch"
    assert span.kind == 1  # SPAN_KIND_INTERNAL
    assert span.attributes["ml.model.version"] == "3"
    assert span.attributes["ml.task"] == "regression"
    assert span.attributes["ml.batch.rows"] == 2
    assert span.resource["service.name"] == "sdk-tests"
    assert span.status_code == 0


def test_exception_propagates_unchanged_and_is_recorded(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    error = ModelFailed("the model broke")

    @inferwatch.monitor(model=model)
    def predict(x: object) -> object:
        raise error

    with pytest.raises(ModelFailed) as raised:
        predict([{"a": 1.0}, {"a": 2.0}])
    assert raised.value is error
    ids = inferwatch.last_prediction_ids()
    assert len(ids) == 2
    (span,) = spans_of(model)
    assert span.status_code == 2  # STATUS_CODE_ERROR
    assert span.status_message == f"{__name__}.ModelFailed"
    assert span.events == [
        (
            "exception",
            {"exception.type": f"{__name__}.ModelFailed", "exception.message": "the model broke"},
        )
    ]
    assert span.attributes["ml.prediction.ids"] == ids
    assert "ml.output.frame" not in span.attributes
    assert decode_frame(span.attributes["ml.input.frame"]).rows == 2


def test_start_and_end_times_bracket_the_call(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    import time

    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        time.sleep(0.02)
        return 1.0

    before = time.time_ns()
    predict({"a": 1.0})
    after = time.time_ns()
    (span,) = spans_of(model)
    assert before <= span.start_ns and span.end_ns <= after
    assert span.end_ns - span.start_ns >= 20_000_000


async def test_async_functions(live: Receiver, model: str, spans_of: SpansOf) -> None:
    result = {"label": "yes"}

    @inferwatch.monitor(model=model)
    async def predict(row: dict[str, float]) -> dict[str, str]:
        await asyncio.sleep(0)
        return result

    assert asyncio.iscoroutinefunction(predict)
    assert await predict({"a": 1.0}) is result
    ids = inferwatch.last_prediction_ids()

    @inferwatch.monitor(model=model)
    async def failing(row: dict[str, float]) -> None:
        raise ModelFailed("async")

    with pytest.raises(ModelFailed):
        await failing({"a": 2.0})
    spans = spans_of(model, 2)
    assert spans[0].attributes["ml.prediction.ids"] == ids
    assert labels(frame_at(spans[0].attributes, "ml.output.frame"), "label") == ["yes"]
    assert spans[1].status_code == 2


def test_methods_static_and_class_methods(live: Receiver, model: str, spans_of: SpansOf) -> None:
    class Model:
        scale = 2.0

        @inferwatch.monitor(model=model)
        def predict(self, features: dict[str, float]) -> float:
            return features["a"] * self.scale

        @classmethod
        @inferwatch.monitor(model=model)
        def predict_cls(cls, features: dict[str, float]) -> float:
            return features["a"] * cls.scale

        @inferwatch.monitor(model=model)
        @staticmethod
        def predict_static(features: dict[str, float]) -> float:
            return features["a"]

    assert Model().predict({"a": 1.0}) == 2.0
    assert Model.predict_cls({"a": 2.0}) == 4.0
    assert Model.predict_static({"a": 3.0}) == 3.0
    assert Model().predict_static({"a": 4.0}) == 4.0
    spans = spans_of(model, 4)
    inputs = [numbers(frame_at(s.attributes, "ml.input.frame"), "a")[0] for s in spans]
    outputs = [numbers(frame_at(s.attributes, "ml.output.frame"), "prediction")[0] for s in spans]
    assert inputs == [1.0, 2.0, 3.0, 4.0]
    assert outputs == [2.0, 4.0, 3.0, 4.0]


def test_inputs_picks_the_named_argument(live: Receiver, model: str, spans_of: SpansOf) -> None:
    @inferwatch.monitor(model=model, inputs="features")
    def predict(request_id: str, features: list[float], *, threshold: float = 0.5) -> int:
        return 1

    predict("r1", [1.0, 2.0])
    predict("r2", features=[3.0, 4.0], threshold=0.1)
    spans = spans_of(model, 2)
    blocks = [block(frame_at(s.attributes, "ml.input.frame").columns[0]) for s in spans]
    assert [b.values.tolist() for b in blocks] == [[[1.0, 2.0]], [[3.0, 4.0]]]


def test_inputs_naming_no_parameter_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match="has no parameter 'rows'"):

        @inferwatch.monitor(model="m", inputs="rows")
        def predict(features: object) -> None: ...


def test_generators_are_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="generator function"):

        @inferwatch.monitor(model="m")
        def predict(features: object) -> Iterator[int]:
            yield 1


def test_bad_arguments_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        inferwatch.monitor(model="m", task="ranking")
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        inferwatch.monitor(model="")
    with pytest.raises(TypeError, match="id_from must be a field name or a callable"):
        inferwatch.monitor(model="m", id_from=cast(Any, 3))


def test_id_from_field_is_used_and_is_not_a_feature(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    @inferwatch.monitor(model=model, id_from="request_id")
    def predict(rows: list[dict[str, object]]) -> list[int]:
        return [0] * len(rows)

    predict([{"request_id": "r-1", "x": 1.0}, {"request_id": 2, "x": 2.0}])
    assert inferwatch.last_prediction_ids() == ["r-1", "2"]
    (span,) = spans_of(model)
    assert span.attributes["ml.prediction.ids"] == ["r-1", "2"]
    assert list(decode_frame(span.attributes["ml.input.frame"]).features()) == ["x"]
    assert "inferwatch.capture_error" not in span.attributes


def test_id_from_missing_field_falls_back_to_generated_ids(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    @inferwatch.monitor(model=model, id_from="request_id")
    def predict(row: dict[str, float]) -> float:
        return 1.0

    before = inferwatch.stats().capture_errors
    predict({"x": 1.0})
    (span,) = spans_of(model)
    (generated,) = span.attributes["ml.prediction.ids"]
    assert uuid.UUID(generated).version == 7
    assert "id_from field 'request_id' is missing" in span.attributes["inferwatch.capture_error"]
    assert inferwatch.stats().capture_errors == before + 1


def test_id_from_callable(live: Receiver, model: str, spans_of: SpansOf) -> None:
    @inferwatch.monitor(model=model, id_from=lambda x: [f"row-{i}" for i in range(len(x))])
    def predict(x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1)

    predict(np.ones((3, 2)))
    assert inferwatch.last_prediction_ids() == ["row-0", "row-1", "row-2"]

    @inferwatch.monitor(model=model, id_from=lambda x: ["only-one"])
    def wrong_count(x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1)

    wrong_count(np.ones((2, 2)))
    ids = inferwatch.last_prediction_ids()
    assert len(ids) == 2 and all(uuid.UUID(i).version == 7 for i in ids)
    spans_of(model, 2)


def test_capture_failures_never_reach_the_caller(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    class Opaque:
        pass

    result = Opaque()

    @inferwatch.monitor(model=model)
    def predict(x: object) -> object:
        return result

    assert predict(Opaque()) is result
    (span,) = spans_of(model)
    assert span.attributes["inferwatch.capture_error"] == (
        "inputs of type Opaque; outputs of type Opaque"
    )
    assert span.attributes["ml.batch.rows"] == 1
    assert len(span.attributes["ml.prediction.ids"]) == 1


def test_id_from_callable_that_raises_is_counted_not_raised(live: Receiver, model: str) -> None:
    def broken(inputs: object) -> list[str]:
        raise KeyError("no ids here")

    @inferwatch.monitor(model=model, id_from=broken)
    def predict(x: object) -> float:
        return 1.0

    before = inferwatch.stats().monitoring_errors
    assert predict({"a": 1.0}) == 1.0
    assert len(inferwatch.last_prediction_ids()) == 1
    assert inferwatch.stats().monitoring_errors == before + 1


def test_monitoring_errors_are_logged_rate_limited_without_values(
    live: Receiver, model: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "4111-1111-1111-1111"

    def broken(inputs: object) -> list[str]:
        raise ValueError(f"bad card {secret}")

    @inferwatch.monitor(model=model, id_from=broken)
    def predict(x: object) -> float:
        return 1.0

    with caplog.at_level("WARNING", logger="inferwatch"):
        for _ in range(50):
            predict({"card": secret})
    lines = [r.getMessage() for r in caplog.records if r.name == "inferwatch"]
    assert len(lines) == 1
    assert "id_from failed for model" in lines[0] and "ValueError" in lines[0]
    assert secret not in lines[0]


def test_last_prediction_ids_are_per_thread(live: Receiver, model: str) -> None:
    @inferwatch.monitor(model=model)
    def predict(x: list[dict[str, float]]) -> list[int]:
        return [0] * len(x)

    predict([{"a": 1.0}])
    mine = inferwatch.last_prediction_ids()
    barrier = threading.Barrier(2)
    seen: dict[str, tuple[int, list[str]]] = {}

    def worker(name: str, rows: int) -> None:
        predict([{"a": 1.0}] * rows)
        barrier.wait()  # both threads have called before either reads
        seen[name] = (rows, inferwatch.last_prediction_ids())

    threads = [threading.Thread(target=worker, args=(n, r)) for n, r in (("a", 2), ("b", 3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for rows, ids in seen.values():
        assert len(ids) == rows
    assert set(seen["a"][1]).isdisjoint(seen["b"][1])
    assert inferwatch.last_prediction_ids() == mine  # other threads' calls did not change it


async def test_last_prediction_ids_are_per_task(live: Receiver, model: str) -> None:
    @inferwatch.monitor(model=model)
    async def predict(x: list[dict[str, float]]) -> list[int]:
        await asyncio.sleep(0.01)
        return [0] * len(x)

    async def call(rows: int) -> tuple[int, list[str]]:
        await predict([{"a": 1.0}] * rows)
        await asyncio.sleep(0.01)  # let the other task's call finish in between
        return rows, inferwatch.last_prediction_ids()

    results = await asyncio.gather(call(1), call(4), call(2))
    for rows, ids in results:
        assert len(ids) == rows
    assert len({i for _, ids in results for i in ids}) == 7


def test_after_asyncio_run_the_ids_are_never_an_earlier_calls(live: Receiver, model: str) -> None:
    # Issue #11: asyncio.run runs the coroutine in a copy of the caller's context, so the ids
    # it set never reached the caller, who read those of an earlier call to another model.
    @inferwatch.monitor(model=f"{model}-sync")
    def credit(x: dict[str, float]) -> float:
        return 1.0

    @inferwatch.monitor(model=model)
    async def fraud(x: list[dict[str, float]]) -> list[float]:
        return [0.0] * len(x)

    credit({"a": 1.0})
    earlier = inferwatch.last_prediction_ids()

    asyncio.run(fraud([{"a": 1.0}, {"a": 2.0}]))
    ids = inferwatch.last_prediction_ids()
    assert ids != earlier
    (span,) = live.predictions(model, 1)
    assert ids == span.attributes["ml.prediction.ids"]  # the async call's own ids

    async def two_calls() -> None:
        await fraud([{"a": 1.0}])
        await fraud([{"a": 1.0}])

    # Several calls in the loop: no call is the caller's own, so none is returned.
    asyncio.run(two_calls())
    assert inferwatch.last_prediction_ids() == []

    credit({"a": 1.0})  # a call in this context again: its ids
    assert len(inferwatch.last_prediction_ids()) == 1
    assert inferwatch.last_prediction_ids() not in (earlier, ids)


def test_a_batch_of_row_dicts_is_recorded_as_it_was_during_the_call(
    receiver: Receiver, model: str, spans_of: SpansOf
) -> None:
    # Row dicts are encoded by the export thread, here only at the flush (a long interval):
    # changing them after the call must not change what was recorded.
    inferwatch.init(endpoint=receiver.url, service_name="sdk-tests", flush_interval=60.0)

    @inferwatch.monitor(model=model)
    def predict(rows: list[dict[str, object]]) -> np.ndarray:
        return np.array([0.5] * len(rows))

    rows: list[dict[str, object]] = [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}, {"b": "x"}]
    predict(rows)
    rows[0]["a"] = 99.0
    rows[1]["added"] = 5.0
    rows.append({"a": 7.0, "b": "z"})
    (span,) = spans_of(model)
    frame = frame_at(span.attributes, "ml.input.frame")
    assert span.attributes["ml.batch.rows"] == frame.rows == 3
    np.testing.assert_array_equal(numbers(frame, "a"), [1.0, 2.0, np.nan])
    assert labels(frame, "b") == ["x", "y", "x"]
    assert list(frame.features()) == ["a", "b"]
    assert "inferwatch.capture_error" not in span.attributes


def test_problems_of_row_dicts_encoded_later_reach_the_span(
    live: Receiver, model: str, spans_of: SpansOf
) -> None:
    @inferwatch.monitor(model=model)
    def predict(rows: list[dict[str, object]]) -> list[float]:
        return [1.0, 2.0, 3.0]

    before = inferwatch.stats().capture_errors
    predict([{"a": 1.0, "bad": {"x": 1}}, {"a": 2.0, "bad": {"x": 2}}])
    (span,) = spans_of(model)
    # The inputs' problem (found by the export thread) first, as for any other call.
    assert span.attributes["inferwatch.capture_error"] == (
        "'bad' holds dict values; 3 outputs for 2 input rows"
    )
    assert list(frame_at(span.attributes, "ml.input.frame").features()) == ["a"]
    assert "ml.output.frame" not in span.attributes
    assert inferwatch.stats().capture_errors == before + 1
