"""Drift in images: 8x8 digits (64 pixel features), clean windows, then noisy ones.

    python examples/digits_drift.py [--endpoint URL] [--window 4]

A classifier of scikit-learn's bundled digits is monitored with ``@inferwatch.monitor``; each
image is a row of 64 pixel features. The collector's multivariate checks see wide rows through
a dimensionality reduction (PCA fitted on the reference), where a little Gaussian noise on every
pixel stands out even though no single pixel changes much. The script sets the model's window to
a few seconds through the collector's config API, uploads held-out images as the reference,
sends clean then noisy windows, and prints what the collector found in each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import inferwatch

MODEL_NAME = "digits"
MODEL_VERSION = "1"
PIXELS: tuple[str, ...] = tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8))
PHASES = ("clean", "clean", "noisy", "noisy")
NOISE_SD = 2.0  # on the 0-16 pixel scale
ROWS_PER_WINDOW = 300
FAILING = frozenset({"alert", "warning"})

rng = np.random.default_rng(11)
_digits = load_digits()
_order = rng.permutation(len(_digits.target))
TRAIN, REFERENCE, POOL = _order[:700], _order[700:1200], _order[1200:]
MODEL = LogisticRegression(max_iter=3000).fit(_digits.data[TRAIN], _digits.target[TRAIN])


@inferwatch.monitor(
    model=MODEL_NAME, version=MODEL_VERSION, task="classification", feature_names=PIXELS
)
def classify(images: np.ndarray) -> np.ndarray:
    """The digit in each row of 64 pixels (0-16)."""
    return MODEL.predict(images)


def window_images(phase: str, number: int) -> np.ndarray:
    """Held-out images (no repeats within a window), with noise added in the noisy phase."""
    draw = np.random.default_rng([11, number])
    images = _digits.data[draw.choice(POOL, size=ROWS_PER_WINDOW, replace=False)]
    if phase == "noisy":
        images = np.clip(images + draw.normal(0.0, NOISE_SD, size=images.shape), 0.0, 16.0)
    return images


def summarise(window: Mapping[str, Any]) -> str:
    """Failing per-pixel tests counted, and the verdict of every whole-image check."""
    pixels: dict[str, int] = {}
    joint: list[str] = []
    for result in window.get("results") or []:
        detector, feature = result["detector"], result["feature"]
        if result["decision"] not in FAILING:
            continue
        if feature is None:
            joint.append(detector)
        else:
            pixels[detector] = pixels.get(detector, 0) + 1
    per_pixel = ", ".join(f"{n} pixels ({d})" for d, n in pixels.items()) or "no pixel"
    return f"drifted: {per_pixel}; whole-image checks: {', '.join(joint) or 'none'}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318", help="the collector")
    parser.add_argument("--window", type=float, default=4.0, help="window seconds (default 4)")
    args = parser.parse_args(argv)
    endpoint = args.endpoint.rstrip("/")
    api = httpx.Client(base_url=endpoint, timeout=30.0)
    lateness = 1.0
    api.put(
        f"/v1/models/{MODEL_NAME}/config",
        json={
            "window": args.window,
            "allowed_lateness": lateness,
            "reference": {"policy": "none"},
        },
    ).raise_for_status()
    reference = _digits.data[REFERENCE]
    inferwatch.set_reference(
        MODEL_NAME,
        MODEL_VERSION,
        reference,
        predictions=MODEL.predict(reference),
        labels=_digits.target[REFERENCE],
        feature_names=PIXELS,
        task="classification",
        endpoint=endpoint,
    )
    inferwatch.init(endpoint=endpoint, flush_interval=0.5)

    first = int(time.time() // args.window) + 1
    for number, phase in enumerate(PHASES):
        start = (first + number) * args.window
        time.sleep(max(0.0, start + 0.2 - time.time()))
        for batch in np.array_split(window_images(phase, number), 10):
            classify(batch)
        inferwatch.flush()
        print(f"sent window {number + 1} ({phase}): {ROWS_PER_WINDOW} images")
    inferwatch.shutdown()

    starts = {(first + n) * args.window: phase for n, phase in enumerate(PHASES)}
    deadline = time.time() + 2 * args.window + lateness + 30
    shown: set[int] = set()
    while len(shown) < len(PHASES) and time.time() < deadline:
        for window in api.get(f"/v1/models/{MODEL_NAME}/windows").json()["windows"]:
            start = _epoch(window["start"])
            if start not in starts or window["id"] in shown or not window["evaluated_at"]:
                continue
            shown.add(window["id"])
            detail = api.get(f"/v1/models/{MODEL_NAME}/windows/{window['id']}").json()
            print(
                f"window {window['start'][11:19]} {starts[start]:<5} {window['rows']} rows: "
                f"{summarise(detail)}"
            )
        time.sleep(0.3)
    api.close()
    if len(shown) < len(PHASES):
        print(f"only {len(shown)} of {len(PHASES)} windows were evaluated in time")
        return 1
    return 0


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    raise SystemExit(main())
