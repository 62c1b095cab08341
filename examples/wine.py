"""The model the examples monitor: a wine classifier trained on scikit-learn's bundled wine data.

Nothing is downloaded: ``load_wine`` ships with scikit-learn (178 wines, 13 measurements, three
cultivars). Training takes a few milliseconds, so every process that needs the model (the
BentoML service and each of its workers, the plain-function example) trains it at import.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL_NAME = "wine"
MODEL_VERSION = "1"
# scikit-learn's names, with the one "/" replaced so that every name is a plain identifier.
FEATURES: tuple[str, ...] = tuple(name.replace("/", "_") for name in load_wine().feature_names)
CLASSES: tuple[int, ...] = (0, 1, 2)


def training_data() -> tuple[np.ndarray, np.ndarray]:
    """The 178 wines (rows x 13 features) and their cultivar (0, 1 or 2)."""
    data = load_wine()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def train() -> Pipeline:
    """Standardise, then a multinomial logistic regression (deterministic: no randomness)."""
    features, labels = training_data()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
