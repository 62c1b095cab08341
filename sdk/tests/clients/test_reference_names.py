"""A reference has exactly the columns (names, kinds, order) that @monitor records for the same
data: the collector compares the two column by column, by name.

The live side goes through the real pipeline to a real OTLP receiver (inferwatch_testkit.otlp),
the reference side through set_reference to the collector stand-in.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

import inferwatch
from inferwatch import contract
from inferwatch.frame import CategoricalColumn, Frame, Role, decode_frame
from inferwatch.reference import set_reference
from inferwatch_testkit.otlp import OTLPReceiver as Receiver
from inferwatch_testkit.otlp import start_otlp_receiver as start_receiver

if TYPE_CHECKING:
    from conftest import FakeCollector

Schema = list[tuple[str, str]]
ROWS = 6
_models = itertools.count()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = start_receiver()
    yield running
    running.stop()


@pytest.fixture
def live(receiver: Receiver) -> Iterator[Receiver]:
    inferwatch.init(endpoint=receiver.url, service_name="names", flush_interval=0.05)
    yield receiver
    inferwatch.shutdown(timeout=2.0)


def schema(frame: Frame, role: Role | None = None) -> Schema:
    return [
        (name, "categorical" if isinstance(column, CategoricalColumn) else "numeric")
        for name, column in frame.features(role).items()
    ]


def recorded(
    receiver: Receiver, calls: list[tuple[object, object]], **monitor: Any
) -> tuple[Schema, Schema]:
    """The input and output columns of the spans of ``calls`` (inputs, outputs), all alike."""
    model = f"names-{next(_models)}"
    outputs = iter([out for _, out in calls])

    @inferwatch.monitor(model=model, **monitor)
    def predict(inputs: object) -> object:
        return next(outputs)

    for inputs, _ in calls:
        predict(inputs)
    assert inferwatch.flush(timeout=10.0)
    spans = [s for s in receiver.spans if s.attributes["ml.model.name"] == model]
    assert len(spans) == len(calls)
    schemas = set()
    for span in spans:
        assert contract.ATTR_CAPTURE_ERROR not in span.attributes, span.attributes
        inputs_frame = decode_frame(span.attributes[contract.ATTR_INPUT_FRAME])
        outputs_frame = decode_frame(span.attributes[contract.ATTR_OUTPUT_FRAME])
        schemas.add((tuple(schema(inputs_frame)), tuple(schema(outputs_frame))))
    assert len(schemas) == 1, schemas
    ((inputs_schema, outputs_schema),) = schemas
    return list(inputs_schema), list(outputs_schema)


def uploaded(
    collector: FakeCollector, features: object, predictions: object, **options: Any
) -> tuple[Schema, Schema]:
    set_reference("names", "1", features, predictions, endpoint=collector.url, **options)
    (part,) = collector.committed[("names", "1")]
    frame = decode_frame(part)
    return schema(frame, "feature"), schema(frame, "output")


rng = np.random.default_rng(3)
X = rng.normal(size=(ROWS, 3))
PROBA = rng.dirichlet([1, 1], size=ROWS)
VALUES = rng.normal(size=ROWS)
IMAGES = rng.normal(size=(ROWS, 2, 2))
NUMBERED = [("x[0]", "numeric"), ("x[1]", "numeric"), ("x[2]", "numeric")]
NAMED = [("age", "numeric"), ("income", "numeric"), ("debt", "numeric")]


@pytest.mark.parametrize(
    ("features", "predictions", "options", "expected"),
    [
        pytest.param(
            X,
            VALUES,
            {"task": "regression"},
            (NUMBERED, [("prediction", "numeric")]),
            id="numpy, 1-D predictions",
        ),
        pytest.param(
            X,
            PROBA,
            {"task": "classification", "classes": ["no", "yes"]},
            (
                NUMBERED,
                [
                    ("prediction", "categorical"),
                    ("proba[no]", "numeric"),
                    ("proba[yes]", "numeric"),
                ],
            ),
            id="numpy, probabilities of named classes",
        ),
        pytest.param(
            X,
            PROBA,
            {"task": "classification", "feature_names": ["age", "income", "debt"]},
            (
                NAMED,
                [("prediction", "numeric"), ("proba[0]", "numeric"), ("proba[1]", "numeric")],
            ),
            id="numpy with feature_names, probabilities",
        ),
        pytest.param(
            X,
            PROBA,
            {},
            (NUMBERED, [("prediction[0]", "numeric"), ("prediction[1]", "numeric")]),
            id="numpy, 2-D predictions of no task",
        ),
        pytest.param(
            IMAGES,
            VALUES,
            {"task": "regression"},
            ([(f"x[{j}]", "numeric") for j in range(4)], [("prediction", "numeric")]),
            id="numpy images (rows, 2, 2), flattened",
        ),
    ],
)
def test_array_reference_names_match_the_live_call(
    live: Receiver,
    collector: FakeCollector,
    features: np.ndarray,
    predictions: np.ndarray,
    options: dict[str, Any],
    expected: tuple[Schema, Schema],
) -> None:
    call = recorded(live, [(features, predictions)], **options)
    assert call == expected
    assert uploaded(collector, features, predictions, **options) == expected


def test_dataframe_reference_names_match_the_live_call(
    live: Receiver, collector: FakeCollector
) -> None:
    frame = pd.DataFrame(
        {
            "age": pd.array([31, None, 45, 52, 28, 60], dtype="Int64"),
            "city": ["Oslo", None, "Lima", "Oslo", "Pune", "Lima"],
            "income": rng.normal(size=ROWS),
            "tier": pd.Categorical([1, 2, 2, None, 1, 1]),
            "active": [True, False, True, True, False, True],
        }
    )
    predictions = pd.Series(["approve", "deny", "approve", "deny", "deny", "deny"])
    call = recorded(live, [(frame, predictions)], task="classification")
    assert call == (
        [
            ("age", "numeric"),
            ("income", "numeric"),
            ("active", "numeric"),
            ("city", "categorical"),
            ("tier", "categorical"),
        ],
        [("prediction", "categorical")],
    )
    assert uploaded(collector, frame, predictions, task="classification") == call


def test_dict_reference_names_match_the_live_calls(
    live: Receiver, collector: FakeCollector
) -> None:
    embeddings = rng.normal(size=(ROWS, 2))
    kinds = ["a", "b", "a", "c", "b", "a"]
    rows = [
        {"amount": float(VALUES[i]), "kind": kinds[i], "embedding": embeddings[i].tolist()}
        for i in range(ROWS)
    ]
    expected = (
        [
            ("amount", "numeric"),
            ("kind", "categorical"),
            ("embedding[0]", "numeric"),
            ("embedding[1]", "numeric"),
        ],
        [("prediction", "numeric")],
    )
    # A model server gets one row dict a call; a batch job a list of them.
    one_at_a_time = recorded(live, [(row, float(i)) for i, row in enumerate(rows)])
    batch = recorded(live, [(rows, np.arange(float(ROWS)))])
    assert one_at_a_time == batch == expected

    columns = {"amount": VALUES, "kind": kinds, "embedding": embeddings}
    assert uploaded(collector, columns, np.arange(float(ROWS))) == expected
    collector.reset()
    assert uploaded(collector, rows, np.arange(float(ROWS))) == expected


def test_row_dicts_of_numbers_match_the_live_batch(
    live: Receiver, collector: FakeCollector
) -> None:
    rows = [{"age": float(a), "income": float(b), "debt": float(c)} for a, b, c in X]
    call = recorded(live, [(rows, VALUES)], task="regression")
    assert call == (NAMED, [("prediction", "numeric")])
    assert uploaded(collector, rows, VALUES, task="regression") == call
