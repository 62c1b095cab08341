"""ASGI middleware recording a model server's HTTP calls as inferwatch prediction spans."""

from inferwatch.middleware.asgi import (
    InferwatchMiddleware,
    MiddlewareStats,
    ResponseStatusError,
    stats,
)
from inferwatch.middleware.mapping import CapturedRequest, CapturedResponse, MappingError

__all__ = [
    "CapturedRequest",
    "CapturedResponse",
    "InferwatchMiddleware",
    "MappingError",
    "MiddlewareStats",
    "ResponseStatusError",
    "stats",
]
