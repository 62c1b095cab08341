"""A label job: send ground truth for earlier predictions, from a process that never predicted.

    python examples/post_labels.py labels.csv [--model wine] [--endpoint URL]

The CSV has a header with ``prediction_id`` and ``label`` columns (what monitor_function.py's
``--labels-out`` writes). Labels are joined to their predictions by id, in the windows the
predictions were made in; a label sent before its prediction arrives waits for it. Sending the
same file twice is harmless: the last label of an id wins.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from wine import MODEL_NAME

import inferwatch


def read_labels(path: Path) -> Iterator[tuple[str, int | str]]:
    """``(prediction_id, label)`` pairs; integer labels are sent as numbers."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"prediction_id", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
        for row in reader:
            label = row["label"]
            yield row["prediction_id"], int(label) if label.lstrip("-").isdigit() else label


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("path", type=Path, help="a CSV with prediction_id and label columns")
    parser.add_argument("--model", default=MODEL_NAME)
    parser.add_argument("--endpoint", help="the collector (default $INFERWATCH_ENDPOINT or :4318)")
    args = parser.parse_args(argv)

    report = inferwatch.log_labels(args.model, read_labels(args.path), endpoint=args.endpoint)
    print(
        f"sent {report.accepted} labels in {report.requests} request(s): {report.joined} joined "
        f"their prediction, {report.pending} wait for it, {report.replaced} replaced earlier ones"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
