"""PredictionRecorder: records one monitored call as one span.

The ``@monitor`` decorator and the ASGI middleware are thin layers over it. Nothing here raises
into the model's code: a failure is counted (``inferwatch.stats()``), logged at most once a
minute, and the call goes on unrecorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opentelemetry.context import get_current
from opentelemetry.util.types import AttributeValue

from inferwatch import contract, diagnostics, export
from inferwatch.capture import count_rows, field_values
from inferwatch.encoder import CallEncoder, Encoded
from inferwatch.export_queue import Completion, PendingSpan
from inferwatch.ids import new_id, new_ids
from inferwatch.redact import Redactor, Rules, check_rules, merge, resolve_key

IdSource = str | Callable[[object], Sequence[object]]

# Enough to say what went wrong; the span must stay small.
_MAX_CAPTURE_ERROR = 1000
_MAX_EXCEPTION_MESSAGE = 1000


class PredictionRecorder:
    """Records the calls of one model version.

    ``id_from`` names the input field (dict key or DataFrame column) holding each row's
    prediction id, which is then not a feature, or is a callable returning one id per row.
    ``feature_names`` names the columns of array inputs; ``classes`` the columns of a
    classifier's probability outputs. A ``version`` of "" is ``contract.DEFAULT_VERSION``.
    ``redact`` maps input features to "drop" or "hash": what is done to them before anything
    leaves the process (inferwatch.redact), together with what ``init(redact=...)`` says for
    this model.
    """

    def __init__(
        self,
        model: str,
        version: str = contract.DEFAULT_VERSION,
        task: str | None = None,
        *,
        id_from: IdSource | None = None,
        feature_names: Sequence[str] | None = None,
        classes: Sequence[object] | None = None,
        redact: Rules | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(version, str):
            raise TypeError(f"version must be a string, got {type(version).__name__}")
        if task is not None and task not in contract.TASKS:
            raise ValueError(f"task must be one of {contract.TASKS} or None, got {task!r}")
        if id_from is not None and not (isinstance(id_from, str) or callable(id_from)):
            raise TypeError(
                f"id_from must be a field name or a callable, got {type(id_from).__name__}"
            )
        if isinstance(feature_names, str) or isinstance(classes, str):
            raise TypeError("feature_names and classes must be sequences, not one string")
        self.model = model
        self.version = version or contract.DEFAULT_VERSION
        self.task = task
        self.id_from = id_from
        self.feature_names = tuple(feature_names) if feature_names is not None else None
        self.classes = tuple(classes) if classes is not None else None
        self.redact = check_rules(redact)
        # The redactor for the settings of the running pipeline (replaced with them).
        self._redactor: tuple[object, Redactor] | None = None
        self._encoder = CallEncoder(
            feature_names=self.feature_names,
            exclude=id_from if isinstance(id_from, str) else None,
            task=task,
            classes=self.classes,
        )
        self._static_attributes: dict[str, AttributeValue] = {
            contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
            contract.ATTR_MODEL_NAME: model,
            contract.ATTR_MODEL_VERSION: self.version,
        }
        if task is not None:
            self._static_attributes[contract.ATTR_TASK] = task

    def prediction_ids(self, inputs: object, given: Sequence[str] | None = None) -> list[str]:
        """One id per row: ``given`` if its length matches, else from ``id_from``, else new."""
        try:
            rows = count_rows(inputs)
        except Exception as exc:
            diagnostics.monitoring_error(self.model, "counting input rows", exc)
            return new_ids(1)
        if given is not None and len(given) == rows:
            return [str(i) for i in given]
        if self.id_from is not None:
            ids = self._ids_from_inputs(inputs, rows)
            if ids is not None:
                return ids
        return [new_id()] if rows == 1 else new_ids(rows)

    def _ids_from_inputs(self, inputs: object, rows: int) -> list[str] | None:
        try:
            if isinstance(self.id_from, str):
                values = field_values(inputs, self.id_from)
            else:
                values = list(self.id_from(inputs))  # type: ignore[misc]
        except Exception as exc:
            diagnostics.monitoring_error(self.model, "id_from", exc)
            return None
        # A missing field is reported on the span by capture; a wrong count or a missing id
        # here falls back to generated ids.
        if values is None or len(values) != rows or any(v is None for v in values):
            return None
        return [v if isinstance(v, str) else str(v) for v in values]

    def record(
        self,
        inputs: object,
        outputs: object,
        *,
        ids: Sequence[str] | None = None,
        start_ns: int,
        end_ns: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record one call as one span; a no-op before ``init`` or when not sampled.

        The inputs and outputs are captured and encoded now (a list of row dicts is copied now
        and encoded by the export thread); the span itself is built and exported by the export
        thread, with these times and the current context as parent.
        """
        pipeline = export.active()
        if pipeline is None:
            return
        if not pipeline.sampler.sampled():
            diagnostics.counters.add("spans_unsampled")
            return
        try:
            encoded = self._encoder.encode(inputs, outputs, self._redactor_for(pipeline))
            attributes = self._attributes(encoded, inputs, ids, pipeline.sampler.rate)
            pending = PendingSpan(
                attributes,
                start_ns,
                end_ns if end_ns is not None else time.time_ns(),
                get_current(),
                _error(error) if error is not None else None,
                complete=self._completion(encoded),
                later_bytes=encoded.later_bytes,
            )
        except Exception as exc:
            diagnostics.monitoring_error(self.model, "recording the call", exc)
            return
        pipeline.submit(pending)

    def _redactor_for(self, pipeline: export.Pipeline) -> Redactor:
        settings = pipeline.settings
        cached = self._redactor
        if cached is not None and cached[0] is settings:
            return cached[1]
        rules = merge(self.redact, settings.redact.get(self.model, {}))
        redactor = Redactor(rules, resolve_key(settings.redact_key) if rules else None)
        self._redactor = (settings, redactor)
        return redactor

    def _attributes(
        self, encoded: Encoded, inputs: object, ids: Sequence[str] | None, sample_rate: float
    ) -> dict[str, AttributeValue]:
        rows = encoded.rows
        problems = encoded.problems
        if ids is None or len(ids) != rows:
            if ids is not None:
                problems.append(f"{len(ids)} prediction ids for {rows} rows; ids were generated")
            ids = self.prediction_ids(inputs) if ids is None else new_ids(rows)
            if len(ids) != rows:
                ids = new_ids(rows)
        attributes = self._static_attributes.copy()
        attributes[contract.ATTR_ROWS] = rows
        attributes[contract.ATTR_PREDICTION_IDS] = ids if isinstance(ids, list) else list(ids)
        attributes[contract.ATTR_SAMPLE_RATE] = sample_rate
        if encoded.inputs is not None:
            attributes[contract.ATTR_INPUT_FRAME] = encoded.inputs
        if encoded.outputs is not None:
            attributes[contract.ATTR_OUTPUT_FRAME] = encoded.outputs
        if encoded.later is None:
            self._add_problems(attributes, problems)
        return attributes

    def _completion(self, encoded: Encoded) -> Completion | None:
        """What the export thread runs to add the inputs left for later (None: nothing)."""
        later = encoded.later
        if later is None:
            return None

        def complete(attributes: dict[str, AttributeValue]) -> None:
            frame, problems = later()
            if frame is not None:
                attributes[contract.ATTR_INPUT_FRAME] = frame
            self._add_problems(attributes, [*problems, *encoded.problems])

        return complete

    def _add_problems(self, attributes: dict[str, AttributeValue], problems: list[str]) -> None:
        if problems:
            reason = "; ".join(problems)[:_MAX_CAPTURE_ERROR]
            attributes[contract.ATTR_CAPTURE_ERROR] = reason
            diagnostics.capture_error(self.model, reason)


def _error(error: BaseException) -> tuple[str, str]:
    """The exception's module-qualified type (bare for builtins) and message."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    try:
        message = str(error)[:_MAX_EXCEPTION_MESSAGE]
    except Exception:
        message = ""
    return name, message
