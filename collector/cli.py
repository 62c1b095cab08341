"""The ``inferwatch`` command: run the collector, show a report, upload a reference.

    inferwatch collector [--host H] [--port P] [--db URL] [--config FILE] [--log-level L]
    inferwatch report --model M [--version V] [--last N] [--endpoint URL]
    inferwatch reference upload --model M --version V FILE [--label-column C] ...

Only ``collector`` needs the collector's extras; the other commands use the SDK's dependencies.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

EXTRAS_HINT = "pip install 'inferwatch[collector]'"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class ProgressBar:
    """``progress(rows_sent, total_rows)`` drawn on one line of a stream with carriage returns."""

    def __init__(self, stream: TextIO, label: str = "uploading", width: int = 30) -> None:
        self._stream = stream
        self._label = label
        self._width = width
        self._drawn = False

    def __call__(self, sent: int, total: int) -> None:
        fraction = sent / total if total else 1.0
        filled = round(self._width * fraction)
        bar = "#" * filled + " " * (self._width - filled)
        self._stream.write(f"\r{self._label} [{bar}] {sent:,}/{total:,} rows {fraction:4.0%}")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    return command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch",
        description="Run the inferwatch collector, show a model's report, upload reference data.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    collector = commands.add_parser("collector", help="run the collector (OTLP receiver and API)")
    collector.add_argument("--config", help="a TOML configuration file")
    collector.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    collector.add_argument("--port", type=int, help="port to listen on (default 4318)")
    collector.add_argument("--db", help="sqlite:///path/to/file.db or postgresql://...")
    collector.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    collector.set_defaults(command=run_collector)

    report = commands.add_parser("report", help="show a model's latest windows and open alerts")
    report.add_argument("--model", required=True)
    report.add_argument("--version", help="only this model version")
    report.add_argument(
        "--last", type=_positive_int, default=10, help="how many windows (default 10)"
    )
    _add_connection_arguments(report)
    report.set_defaults(command=run_report)

    reference = commands.add_parser("reference", help="manage reference data")
    reference_commands = reference.add_subparsers(required=True, metavar="ACTION")
    upload = reference_commands.add_parser(
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
        "--chunk-rows", type=_positive_int, default=50_000, help="rows a part (default 50,000)"
    )
    _add_connection_arguments(upload)
    upload.set_defaults(command=run_reference_upload)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint", help="the collector's URL (default $INFERWATCH_ENDPOINT or 127.0.0.1:4318)"
    )
    parser.add_argument("--api-key", help="bearer token (default $INFERWATCH_API_KEY)")


def _fail(message: str, code: int = 1) -> int:
    print(f"inferwatch: error: {message}", file=sys.stderr)
    return code


def run_collector(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from inferwatch.collector.app import create_app
        from inferwatch.collector.config import ConfigError, load_config
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "inferwatch":
            raise
        return _fail(f"the collector needs packages that are not installed ({exc}): {EXTRAS_HINT}")
    try:
        config = load_config(args.config, host=args.host, port=args.port, db=args.db)
        app = create_app(config)  # opens the database
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot open the collector's database: {exc}")
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from inferwatch.collector.report import ReportError, fetch_report, render_report
    from inferwatch.config import resolve_api_key, resolve_endpoint

    try:
        report = fetch_report(
            resolve_endpoint(args.endpoint),
            args.model,
            version=args.version,
            last=args.last,
            api_key=resolve_api_key(args.api_key),
        )
    except (ReportError, ValueError) as exc:
        return _fail(str(exc))
    print(render_report(report))
    return 0


def run_reference_upload(args: argparse.Namespace) -> int:
    from inferwatch._http import CollectorError
    from inferwatch.collector.datafiles import read_dataset
    from inferwatch.reference import set_reference

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
        return _fail(str(exc))
    progress.close()
    print(
        f"Stored the reference of {stored.model} version {stored.version}: {stored.rows:,} rows, "
        f"{len(stored.features)} features ({', '.join(stored.features[:8])}"
        f"{', ...' if len(stored.features) > 8 else ''}), sent in {stored.parts} parts."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
