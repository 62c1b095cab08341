"""``inferwatch report``: a model's latest windows and open alerts, as a table or as JSON.

It reads the query API (docs/http-api.md) and needs nothing beyond httpx. The table fits the
terminal (100 columns when there is none): the findings column is abbreviated to what is left,
and the full findings of the latest window, the alerts and ``--json`` say the rest.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from inferwatch.cli.common import add_connection_arguments, fail
from inferwatch.config import resolve_api_key, resolve_endpoint

# Decisions that are not findings: the check passed, or had too little data to say.
QUIET_DECISIONS = frozenset({"ok", "not_enough_data"})
# The most windows the collector lists in one answer.
MAX_WINDOWS = 10_000
# The width of the table when the output is not a terminal that says its own.
DEFAULT_WIDTH = 100
# Exit status for a model (or version) the collector does not know: a bad argument.
EXIT_UNKNOWN_MODEL = 2
# The narrowest the findings column gets, whatever the terminal.
MIN_FINDINGS_WIDTH = 12
# The longest a version is shown in the table (longer ones end in "..").
MAX_VERSION_WIDTH = 12
# Before a metric's value: estimated without labels, not measured.
ESTIMATE_MARK = "~"


def add(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="show a model's latest windows and open alerts")
    report.add_argument("--model", required=True)
    report.add_argument("--version", help="only this model version (its windows and alerts)")
    report.add_argument(
        "--last",
        type=_window_count,
        default=10,
        help=f"how many windows (default 10, at most {MAX_WINDOWS:,})",
    )
    report.add_argument(
        "--json", action="store_true", help="print the windows and open alerts as JSON"
    )
    add_connection_arguments(report)
    report.set_defaults(command=run)


def _window_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WINDOWS:
        raise argparse.ArgumentTypeError(
            f"expected a number of windows from 1 to {MAX_WINDOWS:,}, got {text!r}"
        )
    return value


def run(args: argparse.Namespace) -> int:
    try:
        report = fetch_report(
            resolve_endpoint(args.endpoint),
            args.model,
            version=args.version,
            last=args.last,
            api_key=resolve_api_key(args.api_key),
        )
    except UnknownModel as exc:
        return fail(str(exc), EXIT_UNKNOWN_MODEL)
    except (ReportError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        text = json.dumps(report.to_json(), indent=2)
    else:
        text = render_report(report, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Read by a pipe that closed early (``| head``): not an error of the report's. Python
        # would flush stdout again at exit and print a traceback; point it at nothing instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


class ReportError(Exception):
    """The report could not be fetched; the message says why."""


class UnknownModel(ReportError):
    """The collector knows no such model, or the model no such version."""


@dataclass(frozen=True)
class Report:
    model: str
    version: str | None
    windows: list[dict[str, Any]]
    alerts: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """The windows and open alerts as the collector's API gives them."""
        return {
            "model": self.model,
            "version": self.version,
            "windows": self.windows,
            "open_alerts": self.alerts,
        }


def fetch_report(
    endpoint: str,
    model: str,
    *,
    version: str | None = None,
    last: int = 10,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> Report:
    """The latest ``last`` windows of ``model`` (oldest first) and its open alerts, of
    ``version`` only when it is given. Raises UnknownModel when the collector has neither the
    model nor (given) the version, ReportError when it cannot be asked."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base = f"/v1/models/{quote(model, safe='')}"
    only = {"version": version} if version else {}
    with httpx.Client(base_url=endpoint, headers=headers, timeout=timeout) as client:
        params = {**only, "last": str(last)}
        windows = _items(_get(client, f"{base}/windows", params), "windows")
        alerts = _items(_get(client, f"{base}/alerts", {**only, "state": "open"}), "alerts")
        if not windows:
            # No windows: a model without traffic yet, or a name the collector does not know.
            _check_known(_items(_get(client, "/v1/models", {}), "models"), model, version)
    windows.sort(key=lambda w: str(w.get("start", "")))
    # Filtered here too: a collector before alerts took ?version= lists every version's.
    open_alerts = [
        a
        for a in alerts
        if a.get("state") == "open" and (not version or str(a.get("version")) == version)
    ]
    return Report(model, version, windows[-last:], open_alerts)


def _check_known(models: list[dict[str, Any]], model: str, version: str | None) -> None:
    known = {str(m.get("model")): m for m in models}
    if model not in known:
        close = difflib.get_close_matches(model, list(known), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = f" (it has {_listing(sorted(known))})" if known and not close else ""
        raise UnknownModel(f"the collector has no model {model!r}{hint}{listing}")
    if version is None:
        return
    versions = [
        str(v.get("version")) for v in known[model].get("versions") or [] if isinstance(v, Mapping)
    ]
    if version not in versions:
        has = f"versions {_listing(versions)}" if versions else "no windows yet"
        raise UnknownModel(f"model {model!r} has no version {version!r} (it has {has})")


def _listing(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _get(client: httpx.Client, path: str, params: Mapping[str, str]) -> Any:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise ReportError(f"cannot reach the collector at {client.base_url}: {exc}") from None
    if response.status_code != 200:
        raise ReportError(
            f"the collector answered {response.status_code} to GET {path}: {_error(response)}"
        )
    try:
        return response.json()
    except ValueError:
        raise ReportError(f"the collector's answer to GET {path} is not JSON") from None


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return str(body)[:200]


def _items(body: Any, key: str) -> list[dict[str, Any]]:
    """A JSON list, or an object holding the list under ``key``."""
    items = body.get(key) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ReportError(f"the collector's {key} answer is not a list: {str(body)[:200]}")
    return [item for item in items if isinstance(item, dict)]


def render_report(report: Report, width: int = DEFAULT_WIDTH) -> str:
    """The report as text whose lines fit ``width`` columns (but the table's narrowest)."""
    version = f" version {report.version}" if report.version else ""
    # What every window shares is said once, in the title: their length, their day.
    length = _common_length(report.windows)
    day = _common_day(report.windows)
    count = len(report.windows)
    title = f"Model {report.model}{version}: latest {count} window{'s' if count != 1 else ''}"
    title += (f" of {length}" if length else "") + (f" on {day}" if day else "")
    lines = [title, ""]
    if report.windows:
        lines += _window_table(report.windows, width, with_end=not length, day=day)
        if _shows_an_estimate(report.windows):
            note = (
                f"{ESTIMATE_MARK}... est: estimated from the predictions before their labels "
                "arrive (docs/detectors.md, estimated_performance); --json has its band"
            )
            lines += ["", *_wrapped(note, width)]
        latest = [r for r in _results(report.windows[-1]) if _is_finding(r)]
        if latest:
            lines += ["", "Findings in the latest window:"]
            for r in latest:
                lines += _wrapped(
                    f"{_finding_name(r)}: {r.get('message') or r.get('decision')}", width
                )
    else:
        lines.append("No windows yet.")
    lines.append("")
    if report.alerts:
        lines.append(f"Open alerts ({len(report.alerts)}):")
        for alert in report.alerts:
            text = (
                f"[{alert.get('severity', '?')}] {alert.get('check', '?')} "
                f"(version {alert.get('version', '?')}) since {_when(alert.get('opened_at'))}: "
                f"{alert.get('message', '')}"
            )
            lines += _wrapped(text, width)
    else:
        lines.append("No open alerts.")
    return "\n".join(lines)


def _wrapped(text: str, width: int) -> list[str]:
    """An item of a list: indented by two, its continuation lines by four."""
    return textwrap.wrap(
        text,
        max(width, 40),
        initial_indent="  ",
        subsequent_indent="    ",
        break_on_hyphens=False,
    ) or ["  "]


def _window_table(
    windows: Sequence[Mapping[str, Any]], width: int, *, with_end: bool, day: str | None
) -> list[str]:
    metric = _metric_header(windows)
    headers = ["start", *(["end"] if with_end else []), "version", "rows", "labels"]
    headers += ["errors", "p50 ms", "p95 ms", metric, "findings"]
    rows = [_window_cells(w, metric, with_end=with_end, day=day) for w in windows]
    right = set(headers[headers.index("rows") : -1])
    # Every column but the findings at its widest cell; the findings get what is left.
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:-1])]
    left = width - sum(widths) - 2 * len(widths)
    room = max(left, MIN_FINDINGS_WIDTH)
    findings = [_fit(_finding_groups(w), room) for w in windows]
    widths.append(max(len("findings"), *(len(f) for f in findings)))
    rows = [[*row, found] for row, found in zip(rows, findings, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(w) if header in right else cell.ljust(w)
            for cell, w, header in zip(cells, widths, headers, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _window_cells(
    window: Mapping[str, Any], metric: str, *, with_end: bool, day: str | None
) -> list[str]:
    start, end = _when(window.get("start")), _when(window.get("end"))
    if start[:10] == end[:10]:
        end = end[11:]  # same day: the time is enough
    if day:
        start = start[11:]  # the title names the day
    version = str(window.get("version", ""))
    if len(version) > MAX_VERSION_WIDTH:
        version = version[: MAX_VERSION_WIDTH - 2] + ".."
    latency = window.get("latency")
    latency = latency if isinstance(latency, Mapping) else {}
    return [
        start,
        *([end] if with_end else []),
        version,
        _count(window.get("rows")),
        _count(window.get("labelled")),
        _percent(_error_rate(window)),
        _number(_float(latency.get("p50_ms", window.get("p50_ms")))),
        _number(_float(latency.get("p95_ms"))),
        _metric_cell(window.get("main_metric"), named=metric == "metric"),
    ]


def _metric_header(windows: Sequence[Mapping[str, Any]]) -> str:
    """The main metric's name when every window that has one names the same, else "metric"."""
    names = {
        str(m.get("name"))
        for w in windows
        if isinstance(m := w.get("main_metric"), Mapping) and m.get("name")
    }
    return names.pop() if len(names) == 1 else "metric"


def _metric_cell(main: object, *, named: bool) -> str:
    """The realized value; before labels give one, the estimate, marked (``~0.912 est``)."""
    if not isinstance(main, Mapping):
        return "-"
    value = _metric_value(_float(main.get("value")))
    if value == "-" and (estimated := _estimated(main)) is not None:
        value = f"{ESTIMATE_MARK}{_metric_value(estimated)} est"
    return f"{main.get('name')} {value}" if named and value != "-" else value


def _estimated(main: Mapping[str, Any]) -> float | None:
    estimated = main.get("estimated")
    return _float(estimated.get("value")) if isinstance(estimated, Mapping) else None


def _shows_an_estimate(windows: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        isinstance(m := w.get("main_metric"), Mapping)
        and _float(m.get("value")) is None
        and _estimated(m) is not None
        for w in windows
    )


def _metric_value(value: float | None) -> str:
    if value is None:
        return "-"
    size = abs(value)
    if size >= 10_000:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.01 or size == 0:
        return f"{value:.3f}"
    return f"{value:.2e}"


def _finding_groups(window: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """The window's findings by check, in order: (detector, its failing features)."""
    groups: dict[str, list[str]] = {}
    for result in _results(window):
        if _is_finding(result):
            features = groups.setdefault(str(result.get("detector", "?")), [])
            feature = result.get("feature")
            if feature:
                features.append(str(feature))
    return list(groups.items())


def _fit(groups: Sequence[tuple[str, list[str]]], room: int) -> str:
    """The findings in at most ``room`` characters: every feature if they fit, else each check
    with its first feature and how many more, else with its count of features, else the checks'
    names, else those that fit and how many more."""
    if not groups:
        return "-"
    for detail in ("all", "first", "count", "name"):
        pieces = [_group(detector, features, detail) for detector, features in groups]
        text = ", ".join(pieces)
        if len(text) <= room:
            return text
    shown: list[str] = []
    for piece in pieces:
        hidden = len(pieces) - len(shown) - 1
        more = f", +{hidden} more" if hidden else ""
        if len(", ".join([*shown, piece]) + more) > room:
            break
        shown.append(piece)
    if not shown:  # not even one check fits whole
        return text[: max(room - 2, 1)] + ".."
    return ", ".join([*shown, f"+{len(pieces) - len(shown)} more"])


def _group(detector: str, features: list[str], detail: str) -> str:
    if not features:
        return detector
    if detail == "all" or len(features) == 1:
        return f"{detector}({', '.join(features)})"
    if detail == "first":
        return f"{detector}({features[0]}, +{len(features) - 1})"
    if detail == "count":
        return f"{detector}({len(features)})"
    return detector


def _common_length(windows: Sequence[Mapping[str, Any]]) -> str | None:
    """The windows' length (``1 h``) when they all have the same one, else None."""
    lengths = set()
    for window in windows:
        try:
            start = datetime.fromisoformat(str(window.get("start")))
            end = datetime.fromisoformat(str(window.get("end")))
        except ValueError:
            return None
        lengths.add((end - start).total_seconds())
    if len(lengths) != 1:
        return None
    seconds = lengths.pop()
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _common_day(windows: Sequence[Mapping[str, Any]]) -> str | None:
    """The day every window starts on (``2026-11-26``), None when they start on several."""
    days = {_when(w.get("start"))[:10] for w in windows}
    day = days.pop() if len(days) == 1 else None
    return day if day and len(day) == 10 and day[4] == "-" else None


def _results(window: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = window.get("results")
    return [r for r in results if isinstance(r, Mapping)] if isinstance(results, list) else []


def _is_finding(result: Mapping[str, Any]) -> bool:
    return result.get("decision") not in QUIET_DECISIONS


def _finding_name(result: Mapping[str, Any]) -> str:
    feature = result.get("feature")
    name = str(result.get("detector", "?"))
    return f"{name}({feature})" if feature else name


def _error_rate(window: Mapping[str, Any]) -> float | None:
    rate = window.get("error_rate")
    if isinstance(rate, int | float):
        return float(rate)
    errors, requests = window.get("errors"), window.get("requests")
    if isinstance(errors, int) and isinstance(requests, int) and requests:
        return errors / requests
    return None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _when(value: object) -> str:
    """ISO 8601 to ``2026-11-26 17:00:00`` (the offset shown only when it is not UTC)."""
    if not isinstance(value, str) or not value:
        return "?"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    offset = moment.utcoffset()
    return text if not offset else f"{text}{moment.strftime('%z')}"


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
