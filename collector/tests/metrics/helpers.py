"""What the metrics tests share: a scenario of known windows sent to a real collector, and
reading a Prometheus exposition back into numbers."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

import inferwatch
from inferwatch.capture import capture_outputs
from inferwatch.frame import Frame, categorical, numeric
from inferwatch_testkit.collector import T0, SpanSender

WINE = "wine"
CHURN = "churn"
# A classifier whose reference has probabilities and labels: its performance is estimated.
CREDIT = "credit"
CLASSES = ["no", "yes"]
FEATURES = ("alcohol", "acidity", "sugar", "density", "ph")
WINDOW = 60
ROWS = 400
BATCH = 50

# (metric name, sorted label items) -> value.
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client, **headers: str) -> Series:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(text: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in series, f"{key} appears twice"
            series[key] = sample.value
    return series


def model_series(series: Series) -> Series:
    return {key: value for key, value in series.items() if key[0].startswith("inferwatch_model_")}


def value(series: Series, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in series, (
        f"no series {name}{labels}; have {sorted(k for k in series if k[0] == name)}"
    )
    return series[key]


def columns(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict[str, Any]:
    x = rng.normal(size=(rows, len(FEATURES)))
    x[:, 0] += shift
    shares = (0.2, 0.3, 0.5) if shift else (0.5, 0.4, 0.1)
    data: dict[str, Any] = {name: x[:, j] for j, name in enumerate(FEATURES)}
    data["color"] = rng.choice(["red", "white", "rose"], size=rows, p=shares)
    data["prediction"] = np.where(x[:, 0] > 0, "yes", "no")
    return data


def send_window(
    sender: SpanSender, model: str, number: int, data: dict[str, Any], prefix: str
) -> list[str]:
    """The window's rows in batches of 50, all inside window ``number``; returns the ids."""
    ids = [f"{prefix}-{i}" for i in range(len(data["prediction"]))]
    for batch, start in enumerate(range(0, len(ids), BATCH)):
        stop = start + BATCH
        x = np.column_stack([data[name][start:stop] for name in FEATURES])
        inputs = Frame(
            BATCH,
            (
                numeric("features", x, names=list(FEATURES)),
                categorical("color", data["color"][start:stop]),
            ),
        )
        outputs = Frame(BATCH, (categorical("prediction", data["prediction"][start:stop]),))
        when = T0 + number * WINDOW + 1 + batch * 0.5
        sender.send(model, "1", int(when * 1e9), inputs, ids[start:stop], outputs)
    return ids


def upload_reference(url: str, rng: np.random.Generator) -> None:
    reference = columns(rng, 3000)
    inferwatch.set_reference(
        WINE,
        "1",
        {name: reference[name] for name in (*FEATURES, "color")},
        predictions=reference["prediction"],
        task="classification",
        endpoint=url,
    )


def get(client: httpx.Client, path: str, **params: str) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def scored(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, a calibrated classifier's probabilities of no and yes, and labels drawn from
    them."""
    x = rng.normal(size=(rows, 2))
    yes = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    labels = np.where(rng.random(rows) < yes, "yes", "no")
    return x, np.column_stack([1 - yes, yes]), labels


def upload_scored_reference(url: str, rng: np.random.Generator) -> None:
    x, proba, labels = scored(rng, 3000)
    inferwatch.set_reference(
        CREDIT,
        "1",
        {"x0": x[:, 0], "x1": x[:, 1]},
        predictions=proba,
        labels=labels,
        task="classification",
        classes=CLASSES,
        endpoint=url,
    )


def send_scored_window(
    sender: SpanSender, number: int, x: np.ndarray, proba: np.ndarray, prefix: str
) -> list[str]:
    """Rows with their probabilities, in batches of 50 inside window ``number``."""
    ids = [f"{prefix}-{i}" for i in range(len(x))]
    for batch, start in enumerate(range(0, len(ids), BATCH)):
        rows = slice(start, start + BATCH)
        inputs = Frame(BATCH, (numeric("x", x[rows], names=["x0", "x1"]),))
        outputs = capture_outputs(
            proba[rows], rows=BATCH, task="classification", classes=CLASSES
        ).frame
        assert outputs is not None
        when = T0 + number * WINDOW + 1 + batch * 0.5
        sender.send(CREDIT, "1", int(when * 1e9), inputs, ids[start : start + BATCH], outputs)
    return ids
