"""``inferwatch report``: a model's latest windows and open alerts as a plain-text table.

It reads the query API (docs/http-api.md) and needs nothing beyond httpx.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from inferwatch.cli.common import add_connection_arguments, fail, positive_int
from inferwatch.config import resolve_api_key, resolve_endpoint

# Decisions that are not findings: the check passed, or had too little data to say.
QUIET_DECISIONS = frozenset({"ok", "not_enough_data"})


def add(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="show a model's latest windows and open alerts")
    report.add_argument("--model", required=True)
    report.add_argument("--version", help="only this model version")
    report.add_argument(
        "--last", type=positive_int, default=10, help="how many windows (default 10)"
    )
    add_connection_arguments(report)
    report.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = fetch_report(
            resolve_endpoint(args.endpoint),
            args.model,
            version=args.version,
            last=args.last,
            api_key=resolve_api_key(args.api_key),
        )
    except (ReportError, ValueError) as exc:
        return fail(str(exc))
    print(render_report(report))
    return 0


class ReportError(Exception):
    """The report could not be fetched; the message says why."""


@dataclass(frozen=True)
class Report:
    model: str
    version: str | None
    windows: list[dict[str, Any]]
    alerts: list[dict[str, Any]]


def fetch_report(
    endpoint: str,
    model: str,
    *,
    version: str | None = None,
    last: int = 10,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> Report:
    """The latest ``last`` windows of ``model`` (oldest first) and its open alerts."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base = f"/v1/models/{quote(model, safe='')}"
    params = {"version": version} if version else {}
    with httpx.Client(base_url=endpoint, headers=headers, timeout=timeout) as client:
        windows = _items(_get(client, f"{base}/windows", params), "windows")
        alerts = _items(_get(client, f"{base}/alerts", params), "alerts")
    windows.sort(key=lambda w: str(w.get("start", "")))
    open_alerts = [a for a in alerts if a.get("state") == "open"]
    return Report(model, version, windows[-last:] if last > 0 else [], open_alerts)


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


def render_report(report: Report) -> str:
    version = f" version {report.version}" if report.version else ""
    lines = [f"Model {report.model}{version}: latest {len(report.windows)} windows", ""]
    if report.windows:
        lines += _table(
            ["start", "end", "version", "rows", "labelled", "error rate", "p50 ms", "findings"],
            [_window_row(w) for w in report.windows],
            right={"rows", "labelled", "error rate", "p50 ms"},
        )
        latest = [r for r in _results(report.windows[-1]) if _is_finding(r)]
        if latest:
            lines += ["", "Findings in the latest window:"]
            lines += [
                f"  {_finding_name(r)}: {r.get('message') or r.get('decision')}" for r in latest
            ]
    else:
        lines.append("No windows yet.")
    lines.append("")
    if report.alerts:
        lines.append(f"Open alerts ({len(report.alerts)}):")
        for alert in report.alerts:
            lines.append(
                f"  [{alert.get('severity', '?')}] {alert.get('check', '?')} "
                f"(version {alert.get('version', '?')}) since {_when(alert.get('opened_at'))}: "
                f"{alert.get('message', '')}"
            )
    else:
        lines.append("No open alerts.")
    return "\n".join(lines)


def _window_row(window: Mapping[str, Any]) -> list[str]:
    start, end = _when(window.get("start")), _when(window.get("end"))
    if start[:10] == end[:10]:
        end = end[11:]  # same day: the time is enough
    findings = [_finding_name(r) for r in _results(window) if _is_finding(r)]
    return [
        start,
        end,
        str(window.get("version", "")),
        _count(window.get("rows")),
        _count(window.get("labelled")),
        _percent(_error_rate(window)),
        _number(_p50_ms(window)),
        ", ".join(findings) or "-",
    ]


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


def _p50_ms(window: Mapping[str, Any]) -> float | None:
    latency = window.get("latency")
    value = latency.get("p50_ms") if isinstance(latency, Mapping) else window.get("p50_ms")
    return float(value) if isinstance(value, int | float) else None


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


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[str]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if header in right else cell.ljust(width)
            for cell, width, header in zip(cells, widths, headers, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)]
