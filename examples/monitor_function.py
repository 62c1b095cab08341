"""The wine classifier as a plain Python function, monitored with ``@inferwatch.monitor``.

    python examples/monitor_function.py [--endpoint URL] [--calls N] [--labels-out FILE]

Each call of ``classify`` becomes one prediction span sent to the collector; the call returns
exactly what the model returns. ``inferwatch.last_prediction_ids()`` gives the ids of the rows
just predicted: with ``--labels-out`` they are written with the true cultivar to a CSV file, for
the label job (post_labels.py) to send later, as ground truth usually arrives.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from wine import FEATURES, MODEL_NAME, MODEL_VERSION, train, training_data

import inferwatch

MODEL = train()


@inferwatch.monitor(
    model=MODEL_NAME, version=MODEL_VERSION, task="classification", feature_names=FEATURES
)
def classify(rows: np.ndarray) -> np.ndarray:
    """The predicted cultivar of each row of 13 measurements."""
    return MODEL.predict(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", help="the collector (default $INFERWATCH_ENDPOINT or :4318)")
    parser.add_argument("--calls", type=int, default=20, help="monitored calls (default 20)")
    parser.add_argument("--rows", type=int, default=5, help="rows a call (default 5)")
    parser.add_argument("--labels-out", type=Path, help="write prediction_id,label rows here")
    args = parser.parse_args(argv)

    inferwatch.init(endpoint=args.endpoint)
    features, labels = training_data()
    rng = np.random.default_rng(7)
    truth: list[tuple[str, int]] = []
    correct = 0
    for _ in range(args.calls):
        picks = rng.choice(len(features), size=args.rows, replace=False)
        predicted = classify(features[picks])
        ids = inferwatch.last_prediction_ids()
        truth.extend(zip(ids, labels[picks].tolist(), strict=True))
        correct += int((predicted == labels[picks]).sum())
    exported = inferwatch.shutdown(timeout=10.0)  # flushes the spans still queued

    rows = args.calls * args.rows
    print(
        f"{args.calls} monitored calls, {rows} rows, accuracy {correct / rows:.3f}; "
        f"{'every span exported' if exported else 'some spans were NOT exported'}."
    )
    print(f"first prediction ids: {', '.join(i for i, _ in truth[:3])}, ...")
    if args.labels_out is not None:
        with args.labels_out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["prediction_id", "label"])
            writer.writerows(truth)
        print(f"wrote {len(truth)} labels to {args.labels_out}")
    return 0 if exported else 1


if __name__ == "__main__":
    raise SystemExit(main())
