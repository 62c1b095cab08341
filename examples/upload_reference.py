"""Upload the wine model's reference: its training data, with labels and the model's predictions.

    python examples/upload_reference.py [--endpoint URL]
    python examples/upload_reference.py --csv wine_reference.csv   # for the CLI, see README

Drift is measured against this reference, so upload it once per model version, before (or
soon after) the version starts serving. With ``--csv`` the same table is written to a file
instead, for ``inferwatch reference upload``.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from wine import FEATURES, MODEL_NAME, MODEL_VERSION, train, training_data

import inferwatch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoint", help="the collector (default $INFERWATCH_ENDPOINT or :4318)")
    parser.add_argument("--csv", type=Path, help="write the reference to this CSV, send nothing")
    args = parser.parse_args(argv)

    features, labels = training_data()
    predictions = train().predict(features)
    if args.csv is not None:
        with args.csv.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*FEATURES, "label", "prediction"])
            for row, label, predicted in zip(features, labels, predictions, strict=True):
                writer.writerow([*row.tolist(), int(label), int(predicted)])
        print(f"wrote {len(features)} rows to {args.csv}")
        return 0

    report = inferwatch.set_reference(
        MODEL_NAME,
        MODEL_VERSION,
        features,
        predictions=predictions,
        labels=labels,
        feature_names=FEATURES,
        task="classification",
        endpoint=args.endpoint,
    )
    print(
        f"stored the reference of {report.model} version {report.version}: {report.rows} rows, "
        f"{len(report.features)} features, in {report.parts} part(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
