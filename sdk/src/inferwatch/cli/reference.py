"""``inferwatch reference upload``: a model version's reference data from a file."""

from __future__ import annotations

import argparse
import sys

from inferwatch._http import CollectorError
from inferwatch.cli.common import ProgressBar, add_connection_arguments, fail, positive_int
from inferwatch.cli.datafiles import read_dataset
from inferwatch.reference import set_reference


def add(commands: argparse._SubParsersAction) -> None:
    reference = commands.add_parser("reference", help="manage reference data")
    actions = reference.add_subparsers(required=True, metavar="ACTION")
    upload = actions.add_parser(
        "upload",
        help="upload a model version's reference data from a .csv, .parquet or .npy file",
        description="Columns are named by the file's header; for .npy, give 0-based indexes.",
    )
    upload.add_argument("path", metavar="FILE", help="data.csv, data.parquet or data.npy")
    upload.add_argument("--model", required=True)
    upload.add_argument("--version", required=True)
    upload.add_argument("--label-column", help="the column holding labels (ground truth)")
    upload.add_argument("--prediction-column", help="the column holding the model's predictions")
    upload.add_argument("--feature-names", help="comma-separated feature names (.npy only)")
    upload.add_argument("--task", choices=("classification", "regression"))
    upload.add_argument(
        "--chunk-rows", type=positive_int, default=50_000, help="rows a part (default 50,000)"
    )
    add_connection_arguments(upload)
    upload.set_defaults(command=run_upload)


def run_upload(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.feature_names.split(",")] if args.feature_names else None
    progress = ProgressBar(sys.stderr, f"uploading {args.path}")
    try:
        data = read_dataset(
            args.path,
            label_column=args.label_column,
            prediction_column=args.prediction_column,
            feature_names=names,
        )
        stored = set_reference(
            args.model,
            args.version,
            data.features,
            data.predictions,
            data.labels,
            task=args.task,
            chunk_rows=args.chunk_rows,
            endpoint=args.endpoint,
            api_key=args.api_key,
            progress=progress,
        )
    except (ValueError, CollectorError) as exc:
        progress.close()
        return fail(str(exc))
    progress.close()
    parts = f"{stored.parts} part{'' if stored.parts == 1 else 's'}"
    print(
        f"Stored the reference of {stored.model} version {stored.version}: {stored.rows:,} rows, "
        f"{len(stored.features)} features ({', '.join(stored.features[:8])}"
        f"{', ...' if len(stored.features) > 8 else ''}), sent in {parts}."
    )
    return 0
