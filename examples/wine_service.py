"""A BentoML 1.4 service classifying wines, monitored by inferwatch's ASGI middleware.

    bentoml serve wine_service:WineClassifier --working-dir examples

``POST /classify`` with ``{"input_data": [[13 numbers], ...]}`` answers the predicted cultivar of
each row and its probabilities of the three cultivars (``{"prediction": [0, ...], "proba": [[p0,
p1, p2], ...]}``), and the ``X-Prediction-Ids`` response header carries one prediction id per row
(in order), which the label job later sends back with the true cultivar. The middleware records
both: the probabilities are what the collector estimates the accuracy from before the labels
arrive (docs/detectors.md, "Performance before labels").

The middleware sends to ``$INFERWATCH_ENDPOINT`` (default ``http://127.0.0.1:4318``).
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np
from wine import CLASSES, FEATURES, MODEL_NAME, MODEL_VERSION, train

from inferwatch.middleware import InferwatchMiddleware

MODEL = train()


@bentoml.service(workers=1)
class WineClassifier:
    @bentoml.api
    def classify(self, input_data: np.ndarray) -> dict[str, list[Any]]:
        """The predicted cultivar (0, 1 or 2) of each row of 13 measurements, and the
        probabilities of the three cultivars."""
        return {
            "prediction": MODEL.predict(input_data).tolist(),
            "proba": MODEL.predict_proba(input_data).tolist(),
        }


# At module level: BentoML reads its middleware list when each worker builds its app.
WineClassifier.add_asgi_middleware(
    InferwatchMiddleware,
    model=MODEL_NAME,
    version=MODEL_VERSION,
    task="classification",
    feature_names=FEATURES,
    classes=CLASSES,
    endpoint=os.environ.get("INFERWATCH_ENDPOINT", "http://127.0.0.1:4318"),
)
