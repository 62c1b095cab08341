"""A BentoML 1.4 service for the middleware tests and benchmark: an iris classifier.

Configured by environment variables, read when ``bentoml serve`` (and each worker) imports it:
IW_TEST_ENDPOINT (inferwatch endpoint given to the middleware; unset: no middleware),
IW_TEST_WORKERS (default 1), IW_TEST_TRACING (an OTLP/HTTP traces URL: BentoML's own tracing
on, sampling every request).
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np
from mw_bento import FEATURES
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from inferwatch.middleware import InferwatchMiddleware

_X, _y = load_iris(return_X_y=True)
MODEL = LogisticRegression(max_iter=500).fit(_X, _y)

_config: dict[str, Any] = {"workers": int(os.environ.get("IW_TEST_WORKERS", "1"))}
if tracing := os.environ.get("IW_TEST_TRACING"):
    _config["tracing"] = {
        "exporter_type": "otlp",
        "sample_rate": 1.0,
        "otlp": {"protocol": "http", "endpoint": tracing},
    }


@bentoml.service(**_config)
class Iris:
    @bentoml.api
    def classify(self, input_data: np.ndarray) -> np.ndarray:
        return MODEL.predict(input_data)

    @bentoml.api
    def probabilities(self, input_data: np.ndarray) -> np.ndarray:
        return MODEL.predict_proba(input_data)

    @bentoml.api
    def measure(
        self, sepal_length: float, sepal_width: float, petal_length: float, petal_width: float
    ) -> int:
        row = [[sepal_length, sepal_width, petal_length, petal_width]]
        return int(MODEL.predict(np.asarray(row))[0])

    @bentoml.api
    def broken(self, input_data: np.ndarray) -> np.ndarray:
        raise RuntimeError("this endpoint always fails")

    @bentoml.api
    def whoami(self) -> int:
        return os.getpid()


if endpoint := os.environ.get("IW_TEST_ENDPOINT"):
    Iris.add_asgi_middleware(
        InferwatchMiddleware,
        model="iris",
        version="1",
        task="classification",
        feature_names=FEATURES,
        endpoint=endpoint,
    )
