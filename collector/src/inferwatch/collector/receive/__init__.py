"""The OTLP/HTTP receiver: decode export requests into PredictionBatches and hand them on."""

from inferwatch.collector.receive.errors import (
    BadRequest,
    PayloadTooLarge,
    ReceiveError,
    UnsupportedMediaType,
)
from inferwatch.collector.receive.http import ReceiverStats, traces_endpoint
from inferwatch.collector.receive.otlp import DecodedTraces, decode_export_request

__all__ = [
    "BadRequest",
    "DecodedTraces",
    "PayloadTooLarge",
    "ReceiveError",
    "ReceiverStats",
    "UnsupportedMediaType",
    "decode_export_request",
    "traces_endpoint",
]
