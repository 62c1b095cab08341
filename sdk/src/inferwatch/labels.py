"""Sending ground truth to the collector: ``log_labels`` and its asyncio twin ``alog_labels``.

Labels are joined to predictions by the prediction ids the monitored model returned; they may
arrive days later from a process that never called ``inferwatch.init``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx
import numpy as np

from inferwatch import _http, retry
from inferwatch.config import resolve_api_key, resolve_endpoint
from inferwatch.contract import LABELS_PATH

Label: TypeAlias = str | int | bool | float | np.generic
LabelsInput: TypeAlias = Mapping[str, Label] | Iterable[tuple[str, Label]]

# The collector answers 413 above this many labels in one request (docs/http-api.md).
MAX_BATCH_SIZE = 10_000
DEFAULT_BATCH_SIZE = 5_000
_COUNTS = ("accepted", "joined", "pending", "replaced")
# What of the collector's warnings a report keeps: a few sentences of bounded length.
MAX_WARNINGS = 10
MAX_WARNING_CHARS = 1_000

logger = logging.getLogger("inferwatch")


@dataclass(frozen=True, slots=True)
class LabelsReport:
    """What the collector did with the labels, summed over the requests that carried them.

    ``pending`` labels wait for their prediction; ``replaced`` ones overwrote an earlier label.
    ``warnings`` are the collector's sentences about labels it took but that may not be what was
    meant, such as labels for a model it does not know (also logged, once a call).
    """

    accepted: int = 0
    joined: int = 0
    pending: int = 0
    replaced: int = 0
    requests: int = 0
    # What the collector warned about (a model it does not know), each sentence once.
    warnings: tuple[str, ...] = ()

    def __add__(self, other: LabelsReport) -> LabelsReport:
        return LabelsReport(
            self.accepted + other.accepted,
            self.joined + other.joined,
            self.pending + other.pending,
            self.replaced + other.replaced,
            self.requests + other.requests,
            tuple(dict.fromkeys((*self.warnings, *other.warnings))),
        )


class LabelsRejected(_http.RequestRejected):
    """The collector refused a batch of labels (e.g. 400, 401, 413); retrying would not help.

    ``batch`` is the 0-based index of the refused batch; the batches before it were accepted
    and their counts are in ``report``; the ones after it were not sent.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        batch: int = 0,
        what: str = "labels",
        url: str = "",
        report: LabelsReport | None = None,
    ) -> None:
        super().__init__(status, message, what=what, url=url)
        self.batch = batch
        self.report = report if report is not None else LabelsReport()


def log_labels(
    model: str,
    labels: LabelsInput,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: float = _http.DEFAULT_TIMEOUT,
    max_retries: int = retry.DEFAULT_MAX_RETRIES,
    backoff: float = retry.DEFAULT_BACKOFF,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> LabelsReport:
    """Send ground truth for predictions of ``model``, keyed by prediction id.

    ``labels`` maps prediction ids to a class (str, int, bool) or a number, as a mapping or as
    (id, label) pairs. Everything is validated before anything is sent, then sent in requests of
    ``batch_size`` labels, each retried on 429/502/503/504 and connection errors (``max_retries``
    times, waiting ``backoff`` seconds doubling, or what ``Retry-After`` asks). Raises
    ValueError for bad input, LabelsRejected when the collector refuses a batch, and
    CollectorUnavailable when it cannot be reached.
    """
    upload = _LabelsUpload(
        model, labels, endpoint, api_key, timeout, max_retries, backoff, batch_size
    )
    report = LabelsReport()
    if not upload.records:
        return report
    with httpx.Client(**upload.client_options) as client:
        for batch, request in upload.requests(client):
            response = retry.send(client, request, upload.attempts(batch, report))
            report += upload.counts(response, batch)
    _log_warnings(report)
    return report


async def alog_labels(
    model: str,
    labels: LabelsInput,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    timeout: float = _http.DEFAULT_TIMEOUT,
    max_retries: int = retry.DEFAULT_MAX_RETRIES,
    backoff: float = retry.DEFAULT_BACKOFF,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> LabelsReport:
    """``log_labels`` for asyncio code: same arguments, same report, same errors."""
    upload = _LabelsUpload(
        model, labels, endpoint, api_key, timeout, max_retries, backoff, batch_size
    )
    report = LabelsReport()
    if not upload.records:
        return report
    async with httpx.AsyncClient(**upload.client_options) as client:
        for batch, request in upload.requests(client):
            response = await retry.asend(client, request, upload.attempts(batch, report))
            report += upload.counts(response, batch)
    _log_warnings(report)
    return report


class _LabelsUpload:
    """Everything about one log_labels call except the I/O, shared by the sync and async forms."""

    def __init__(
        self,
        model: str,
        labels: LabelsInput,
        endpoint: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        backoff: float,
        batch_size: int,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if (
            not isinstance(batch_size, int)
            or isinstance(batch_size, bool)
            or not 1 <= batch_size <= MAX_BATCH_SIZE
        ):
            raise ValueError(
                f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE} (the collector's "
                f"limit per request), got {batch_size!r}"
            )
        self.model = model
        self.batch_size = batch_size
        self.policy = retry.RetryPolicy(max_retries=max_retries, backoff=backoff)
        self.endpoint = resolve_endpoint(endpoint)
        self.client_options = _http.client_options(self.endpoint, resolve_api_key(api_key), timeout)
        self.records = label_records(labels)
        self.batches = math.ceil(len(self.records) / batch_size)

    def requests(
        self, client: httpx.Client | httpx.AsyncClient
    ) -> Iterator[tuple[int, httpx.Request]]:
        for batch in range(self.batches):
            start = batch * self.batch_size
            body = {"model": self.model, "labels": self.records[start : start + self.batch_size]}
            yield batch, client.build_request("POST", LABELS_PATH, json=body)

    def attempts(self, batch: int, report: LabelsReport) -> _http.CollectorAttempts:
        what = self._describe(batch)

        def rejected(status: int, message: str) -> LabelsRejected:
            return LabelsRejected(
                status, message, batch=batch, what=what, url=self.endpoint, report=report
            )

        return _http.CollectorAttempts(self.policy, what, self.endpoint, rejected)

    def counts(self, response: httpx.Response, batch: int) -> LabelsReport:
        body = _http.json_object(response, self._describe(batch))
        counts: dict[str, int] = {}
        for name in _COUNTS:
            value = body.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise _http.CollectorError(
                    f"the collector at {self.endpoint} answered {self._describe(batch)} "
                    f"without the counts {', '.join(_COUNTS)}: {body!r:.200}"
                )
            counts[name] = value
        # A collector before warnings sends none; anything but a list of sentences is ignored.
        found = body.get("warnings")
        warnings = (
            [w[:MAX_WARNING_CHARS] for w in found if isinstance(w, str)]
            if isinstance(found, list)
            else []
        )
        return LabelsReport(**counts, requests=1, warnings=tuple(warnings[:MAX_WARNINGS]))

    def _describe(self, batch: int) -> str:
        first = batch * self.batch_size
        last = min(first + self.batch_size, len(self.records)) - 1
        accepted = f", after {batch} accepted batch{'es' if batch > 1 else ''}" if batch else ""
        return f"labels batch {batch + 1} of {self.batches} (labels {first} to {last}{accepted})"


def _log_warnings(report: LabelsReport) -> None:
    for warning in report.warnings:
        logger.warning("inferwatch: the collector warned about these labels: %s", warning)


def label_records(labels: LabelsInput) -> list[dict[str, Any]]:
    """Validate labels into the API's ``{"prediction_id": ..., "label": ...}`` records."""
    if isinstance(labels, str | bytes) or not isinstance(labels, Iterable):
        raise ValueError(
            "labels must be a mapping {prediction_id: label} or an iterable of "
            f"(prediction_id, label) pairs, got {type(labels).__name__}"
        )
    items: Iterable[Any] = labels.items() if isinstance(labels, Mapping) else labels
    records: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ValueError(
                f"labels[{position}] must be a (prediction_id, label) pair, got {item!r:.80}"
            )
        prediction_id, label = item
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ValueError(
                f"labels[{position}]: the prediction id must be a non-empty string (as returned "
                f"with the prediction), got {type(prediction_id).__name__} {prediction_id!r:.80}"
            )
        records.append(
            {"prediction_id": str(prediction_id), "label": label_value(label, prediction_id)}
        )
    return records


def label_value(label: object, prediction_id: str = "?") -> str | int | bool | float:
    """A label as the JSON value the API takes; ValueError if it is not a class or a number."""
    if isinstance(label, np.generic) and not isinstance(label, np.void):
        label = label.item()
    if isinstance(label, bool | int | str):
        if isinstance(label, str) and not label:
            raise ValueError(f"label for prediction id {prediction_id!r} is an empty string")
        # Exact types: subclasses (IntEnum, numpy str_) would not survive JSON as themselves.
        if isinstance(label, bool):
            return bool(label)
        return int(label) if isinstance(label, int) else str(label)
    if isinstance(label, float):
        if not math.isfinite(label):
            raise ValueError(
                f"label for prediction id {prediction_id!r} is {label}; a numeric label must be "
                "finite (leave the id out if its label is unknown)"
            )
        return float(label)
    raise ValueError(
        f"label for prediction id {prediction_id!r} must be a class (str, int or bool) or a "
        f"finite float, got {type(label).__name__} {label!r:.80}"
    )
