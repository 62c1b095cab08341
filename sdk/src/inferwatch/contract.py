"""The span contract shared by the SDK (which writes spans) and the collector (which reads them).

One monitored call is one span. Everything the collector needs travels in the span's attributes;
latency and status come from the span itself. docs/span-contract.md describes each attribute.
Bump SCHEMA_VERSION on any change a reader of the previous version would misread.
"""

from typing import Final

SCHEMA_VERSION: Final = 1

INSTRUMENTATION_SCOPE: Final = "inferwatch"
SPAN_NAME: Final = "inferwatch.predict"

# Marks a span as an inferwatch prediction span; spans without it are ignored by the collector.
ATTR_SCHEMA_VERSION: Final = "inferwatch.schema_version"
ATTR_MODEL_NAME: Final = "ml.model.name"
ATTR_MODEL_VERSION: Final = "ml.model.version"
ATTR_TASK: Final = "ml.task"
ATTR_ROWS: Final = "ml.batch.rows"
ATTR_PREDICTION_IDS: Final = "ml.prediction.ids"
# Frames (see inferwatch.frame) holding the call's inputs and outputs, columnar and packed.
ATTR_INPUT_FRAME: Final = "ml.input.frame"
ATTR_OUTPUT_FRAME: Final = "ml.output.frame"
# The probability with which this call was sampled, so that the collector can scale counts.
ATTR_SAMPLE_RATE: Final = "inferwatch.sample_rate"
# Set when the SDK could not capture part of a call (e.g. an output it cannot encode); the
# value says what was skipped. The prediction itself was unaffected.
ATTR_CAPTURE_ERROR: Final = "inferwatch.capture_error"

TASKS: Final = ("classification", "regression")

# The model version of calls, labels' predictions and references that name none: the SDK sends
# it and the collector files a span without a version under it, so both sides agree.
DEFAULT_VERSION: Final = "unversioned"

# Where the collector listens, relative to the endpoint given to inferwatch.init().
TRACES_PATH: Final = "/v1/traces"
LABELS_PATH: Final = "/v1/labels"


def reference_uploads_path(model: str, version: str) -> str:
    """Path that starts a chunked reference upload for one model version."""
    from urllib.parse import quote

    return (
        f"/v1/models/{quote(model, safe='')}/versions/{quote(version, safe='')}/reference/uploads"
    )
