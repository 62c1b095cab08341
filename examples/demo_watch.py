"""Read what the collector found, from its query API, and print it as windows close.

Everything shown comes from ``GET /v1/models/{model}/windows``, ``.../windows/{id}`` and
``.../alerts``; the replay's ledger only adds what the collector cannot know (the phase of a
window, which features were shifted, which rows were injected outliers).
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import httpx
from demo_replay import Schedule, WindowLedger

# Decisions that mean "something is wrong" (docs/collector.md): every check's result says ok,
# warning, alert, not_enough_data or error.
FAILING = frozenset({"alert", "warning"})
# The width every line printed fits in.
WIDTH = 100
# At most this many lines of the final table's drift column a window.
SUMMARY_DRIFT_LINES = 3
# How often a quiet wait says what it is waiting for.
PROGRESS_EVERY_S = 5.0
# Detectors whose per-feature rows name drifted features.
FEATURE_DRIFT = frozenset({"univariate_drift"})
# Detectors whose summary row is one verdict on the whole window.
WINDOW_DRIFT = frozenset({"multivariate_drift", "prediction_drift", "label_drift"})


def epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


@dataclass(frozen=True)
class Findings:
    """A window's results, sorted into what the demo shows."""

    drifted: tuple[str, ...]
    joint: tuple[str, ...]
    outlier_ids: tuple[str, ...]
    outlier_window: bool
    other: tuple[str, ...]
    accuracy: float | None
    # Labelled rows when the window was evaluated (the window's own count may be newer).
    labelled: int | None
    # The shift verdict (label_shift, covariate_shift, both, none) and its sentence.
    verdict: str | None = None
    verdict_message: str | None = None
    # Accuracy estimated from the predicted probabilities (None: not estimated, and why).
    estimate: Estimate | None = None
    estimate_missing: str | None = None

    @classmethod
    def of(cls, window: Mapping[str, Any]) -> Findings:
        results: Sequence[Mapping[str, Any]] = window.get("results") or []
        drifted, joint, other, ids = [], [], [], []
        outlier_window = False
        for row in results:
            detector, feature = str(row.get("detector")), row.get("feature")
            failing = row.get("decision") in FAILING
            if detector == "outliers":
                outlier_window |= failing
                ids.extend(flagged_ids(row))
            elif not failing:
                continue
            elif detector in FEATURE_DRIFT:
                if feature is not None:  # the summary row only repeats the features' verdicts
                    drifted.append(str(feature))
            elif detector == "shift_verdict":
                continue  # shown on its own line
            elif detector in WINDOW_DRIFT:
                if feature is None:
                    joint.append(detector)
            else:
                other.append(f"{detector}({feature})" if feature else detector)
        summary = window.get("summary") or {}
        performance = summary.get("performance") or {}
        shift = window.get("shift") or {}
        estimate, missing = Estimate.of(summary.get("estimated_performance"))
        return cls(
            tuple(sorted(set(drifted))),
            tuple(sorted(set(joint))),
            tuple(dict.fromkeys(ids)),
            outlier_window,
            tuple(sorted(set(other))),
            performance.get("accuracy"),
            performance.get("labelled"),
            shift.get("verdict"),
            shift.get("message"),
            estimate,
            missing,
        )


@dataclass(frozen=True)
class Estimate:
    """A window's accuracy as the collector estimated it without labels (CBPE), with its band."""

    value: float
    lower: float
    upper: float
    confidence: float

    @classmethod
    def of(cls, estimated: Mapping[str, Any] | None) -> tuple[Estimate | None, str | None]:
        """The estimate of a window detail's ``estimated_performance``, or why there is none."""
        if not estimated:
            return None, "the estimated_performance check is off"
        accuracy = (estimated.get("metrics") or {}).get("accuracy")
        if not estimated.get("trusted") or not accuracy:
            reasons = "; ".join(estimated.get("reasons") or []) or "not trusted"
            return None, reasons
        return cls(
            accuracy["value"], accuracy["lower"], accuracy["upper"], estimated["confidence"]
        ), None

    def text(self) -> str:
        return f"~{self.value:.3f} est"

    def band(self) -> str:
        return f"{self.confidence:.0%} band {self.lower:.3f}-{self.upper:.3f}"


def flagged_ids(row: Mapping[str, Any]) -> list[str]:
    """The prediction ids an outlier result flagged, most unusual first."""
    details = row.get("details") or {}
    return [str(i) for i in details.get("flagged_ids") or []]


def short(ids: Iterable[str], width: int = 8) -> str:
    return ", ".join(i[-width:] for i in ids)


class Watcher:
    """Polls the collector; prints each scenario window once it is closed and evaluated."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        model: str,
        schedule: Schedule,
        ledger: Sequence[WindowLedger],
        out: TextIO = sys.stdout,
        progress_every: float = PROGRESS_EVERY_S,
    ) -> None:
        self.client = client
        self.model = model
        self.schedule = schedule
        self.ledger = ledger
        self.out = out
        self.printed: dict[int, int] = {}  # scenario window number -> collector window id
        # Windows whose realized accuracy (all their labels in) has been printed.
        self.realized: set[int] = set()
        self.alerts_seen: dict[int, str] = {}  # alert id -> state
        self.progress_every = progress_every
        # When a line was last printed: a quiet wait says what it waits for every few seconds.
        self._said_at = time.monotonic()

    async def windows(self) -> dict[int, Mapping[str, Any]]:
        """The collector's scenario windows by scenario number (the version is the model's)."""
        response = await self.client.get(f"/v1/models/{self.model}/windows")
        response.raise_for_status()
        found: dict[int, Mapping[str, Any]] = {}
        for window in response.json()["windows"]:
            number = self.schedule.number_of(epoch(window["start"]) or 0.0)
            if number is not None:
                found[number] = window
        return found

    async def window(self, window_id: int) -> Mapping[str, Any]:
        response = await self.client.get(f"/v1/models/{self.model}/windows/{window_id}")
        response.raise_for_status()
        result: Mapping[str, Any] = response.json()
        return result

    async def alerts(self) -> list[Mapping[str, Any]]:
        response = await self.client.get(f"/v1/models/{self.model}/alerts")
        response.raise_for_status()
        alerts: list[Mapping[str, Any]] = response.json()["alerts"]
        return alerts

    async def follow(self, done: Callable[[], bool] | None = None, poll: float = 0.3) -> None:
        """Print windows as they close, and alerts as they change, until every window is shown."""
        since = time.monotonic()
        while len(self.printed) < self.schedule.windows and not (done and done()):
            listed = await self.windows()
            for number, window in sorted(listed.items()):
                if number in self.printed or not window["closed"] or not window["evaluated_at"]:
                    continue
                self.printed[number] = window["id"]
                self.print_window(number, await self.window(window["id"]))
                since = time.monotonic()
            self.print_realized(listed)
            await self.print_alerts()
            waiting = next((n for n in range(self.schedule.windows) if n not in self.printed), None)
            if waiting is not None:
                start = _clock_of(self.schedule.start(waiting))
                end = _clock_of(self.schedule.end(waiting))
                self._progress(f"window {start}-{end} to close and be evaluated", since)
            await asyncio.sleep(poll)
        await self.print_alerts()

    def _progress(self, what: str, since: float) -> None:
        """``waiting for <what> (12 s)`` once nothing was printed for ``progress_every``."""
        now = time.monotonic()
        if now - self._said_at >= self.progress_every:
            self._say(f"  waiting for {what} ({now - since:.0f} s)")

    async def settle(self, timeout: float) -> bool:
        """Wait until every label sent has joined and been evaluated; False on timeout."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            windows = await self.windows()
            self.print_realized(windows)
            if all(self._settled(n, windows.get(n)) for n in range(self.schedule.windows)):
                return True
            self._progress("the late labels to join and be evaluated", since)
            await asyncio.sleep(0.3)
        return False

    def _settled(self, number: int, window: Mapping[str, Any] | None) -> bool:
        ledger = self.ledger[number]
        if window is None:
            return ledger.rows == 0
        evaluated = epoch(window.get("evaluated_at")) or 0.0
        return (
            bool(window["closed"])
            and window["labelled"] >= ledger.labels_sent
            and evaluated >= ledger.last_label_at - 0.01
        )

    # -- printing ------------------------------------------------------------------------------

    def print_window(self, number: int, window: Mapping[str, Any]) -> None:
        ledger = self.ledger[number]
        found = Findings.of(window)
        start, end = _clock(window["start"]), _clock(window["end"])
        rows = window["rows"]
        labelled = found.labelled if found.labelled is not None else window["labelled"]
        coverage = f"{labelled / rows:.0%}" if rows else "-"
        if found.accuracy is not None:
            accuracy = f"{found.accuracy:.3f}"
        else:
            accuracy = found.estimate.text() if found.estimate else "-"
        self._say(
            f"window {start}-{end}  {ledger.phase.name:<15} {rows:>4} rows  "
            f"labelled {labelled:>3} ({coverage:>4})  accuracy {accuracy}"
        )
        if found.estimate is not None:
            when = "before any label" if not labelled else f"from all {rows} rows"
            self._say(
                f"    estimate: accuracy {found.estimate.text()} ({found.estimate.band()}), {when}"
            )
        else:
            self._wrap(f"    estimate: none: {found.estimate_missing}", indent=8)
        shifted = set(ledger.phase.shift)
        drift = ", ".join(f"{f}{'*' if f in shifted else ''}" for f in found.drifted) or "none"
        if found.joint:
            drift += f"  (joint: {', '.join(found.joint)})"
        if found.verdict is not None:
            self._wrap(f"    shift: {found.verdict_message}", indent=11)
        self._wrap(f"    drift: {drift}", indent=11)
        self._wrap(f"    outliers: {self._outliers(found, ledger)}", indent=14)
        if found.other:
            self._wrap(f"    other findings: {', '.join(found.other)}", indent=8)

    def print_realized(self, windows: Mapping[int, Mapping[str, Any]]) -> None:
        """Once all of a printed window's labels are in and evaluated: its realized accuracy
        beside the estimate made before them (the windows list's main metric has both)."""
        for number, window in sorted(windows.items()):
            ledger = self.ledger[number]
            if number not in self.printed or number in self.realized or not ledger.labels:
                continue
            if ledger.labels_sent < len(ledger.labels) or not self._settled(number, window):
                continue
            main = window.get("main_metric") or {}
            if main.get("value") is None:
                continue
            self.realized.add(number)
            estimated = main.get("estimated")
            before = (
                f", estimated ~{estimated['value']:.3f} before them"
                if estimated
                else " (no estimate before them)"
            )
            start, end = _clock(window["start"]), _clock(window["end"])
            self._wrap(
                f"  labels in for {start}-{end}: {main.get('name')} {main['value']:.3f} "
                f"realized on {main.get('scored')} rows{before}",
                indent=4,
            )

    def _outliers(self, found: Findings, ledger: WindowLedger) -> str:
        if not found.outlier_ids and not found.outlier_window:
            return "none"
        injected = set(ledger.outlier_ids)
        ids = [f"{i[-8:]}{'*' if i in injected else ''}" for i in found.outlier_ids[:6]]
        more = f" (+{len(found.outlier_ids) - 6} more)" if len(found.outlier_ids) > 6 else ""
        hit = len(injected & set(found.outlier_ids))
        verdict = "window has excess outliers; " if found.outlier_window else ""
        return (
            f"{verdict}rows {', '.join(ids) or '-'}{more}; {hit} of {len(injected)} injected found"
        )

    async def print_alerts(self) -> None:
        for alert in await self.alerts():
            state = str(alert.get("state"))
            if self.alerts_seen.get(alert["id"]) == state:
                continue
            self.alerts_seen[alert["id"]] = state
            if state == "open":
                message = str(alert.get("message") or "")
                self._wrap(
                    f"  ALERT opened [{alert.get('severity')}] {alert.get('check')}: {message}",
                    indent=4,
                )
            else:
                self._say(f"  ALERT {state}: {alert.get('check')}")

    def print_summary(self, windows: Mapping[int, Mapping[str, Any]]) -> None:
        """The scenario's windows, one row each; the drift column wraps within WIDTH, and lists
        the shifted features and the joint checks first, then as many others as fit."""
        self._say("")
        self._say("After the late labels joined:")
        # A window's start is enough (each lasts until the next one's); the drift gets the rest.
        prefix = (
            f"{'start':<8}  {'phase':<15}  {'labels':>6}  {'accuracy':>8}  {'estimate':>8}  "
            f"{'outliers':>8}  {'shift':<9}  "
        )
        room = WIDTH - len(prefix)
        table = [prefix + "drift"]
        for number in range(self.schedule.windows):
            ledger = self.ledger[number]
            window = windows.get(number)
            if window is None:
                start = _clock_of(self.schedule.start(number))
                table.append(f"{start:<8}  {ledger.phase.name:<15}  (no window)")
                continue
            found = Findings.of(window)
            rows, labelled = window["rows"], window["labelled"]
            accuracy = f"{found.accuracy:.3f}" if found.accuracy is not None else "-"
            estimate = f"~{found.estimate.value:.3f}" if found.estimate else "none"
            # label_shift -> label, covariate_shift -> covariate: the drift gets the room.
            verdict = (found.verdict or "-").removesuffix("_shift")
            coverage = f"{labelled / rows:.0%}" if rows else "-"
            shifted = set(ledger.phase.shift)
            drift = [f"{f}*" for f in found.drifted if f in shifted] + list(found.joint)
            drift += [f for f in found.drifted if f not in shifted]
            injected = set(ledger.outlier_ids)
            outliers = f"{len(found.outlier_ids)}"
            if injected:
                outliers += f" ({len(injected & set(found.outlier_ids))}*)"
            first, *rest = fit_lines(drift, room, SUMMARY_DRIFT_LINES)
            table.append(
                f"{_clock(window['start']):<8}  {ledger.phase.name:<15}  {coverage:>6}  "
                f"{accuracy:>8}  {estimate:>8}  {outliers:>8}  {verdict:<9}  {first}"
            )
            table += [" " * len(prefix) + line for line in rest]
        self._say(table[0])
        self._say("-" * max(len(line) for line in table))
        for line in table[1:]:
            self._say(line)
        self._say("(* = a feature the demo shifted, or rows it injected as outliers)")
        self._wrap(
            "(estimate = the accuracy estimated from the probabilities before the labels; none "
            "where the window's scores lie where the reference has too few rows to calibrate)",
            indent=1,
        )

    def _wrap(self, text: str, indent: int) -> None:
        """A line wrapped within WIDTH, its continuation lines indented by ``indent``."""
        for line in textwrap.wrap(text, WIDTH, subsequent_indent=" " * indent) or [""]:
            self._say(line)

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)
        self._said_at = time.monotonic()


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%H:%M:%S")


def _clock_of(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")


def fit_lines(items: Sequence[str], width: int, lines: int) -> list[str]:
    """``items`` joined with commas and wrapped within ``width`` on at most ``lines`` lines: the
    first ones, then "+N more" for those that do not fit."""
    for keep in range(len(items), -1, -1):
        hidden = len(items) - keep
        shown = [*items[:keep], *([f"+{hidden} more"] if hidden else [])]
        wrapped = textwrap.wrap(", ".join(shown), width)
        if len(wrapped) <= lines:
            return wrapped or ["-"]
    return [f"{len(items)} items"[:width]]
