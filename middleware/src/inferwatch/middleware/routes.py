"""Which requests the middleware monitors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["INFRA_SEGMENTS", "TASK_SEGMENTS", "RouteFilter"]

# BentoML's own endpoints (under the service's path prefix); all are GET, listed so that a stray
# POST to one is not mistaken for a prediction.
INFRA_SEGMENTS = frozenset(
    {"readyz", "livez", "healthz", "metrics", "schema.json", "docs.json", "docs"}
)
# BentoML task endpoints answer with a task id, not the prediction, so they are not calls to
# monitor; the task's synchronous route (POST /<api>) is.
TASK_SEGMENTS = frozenset({"submit", "retry"})


class RouteFilter:
    """``routes=None``: every POST whose last path segment is not in INFRA_SEGMENTS or
    TASK_SEGMENTS (for a BentoML service, exactly its ``@bentoml.api`` routes).

    Otherwise: requests of any method to the listed paths; an entry ending in ``*`` is a prefix.
    """

    def __init__(self, routes: Iterable[str] | None = None) -> None:
        if isinstance(routes, str):
            raise TypeError(f"routes must be a list of paths, not the string {routes!r}")
        self._default = routes is None
        exact: set[str] = set()
        prefixes: list[str] = []
        for route in routes or ():
            if not isinstance(route, str) or not route.startswith("/"):
                raise ValueError(f"each route must be a path starting with '/', got {route!r}")
            if route.endswith("*"):
                prefixes.append(route[:-1])
            else:
                exact.add(route)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def monitors(self, scope: Mapping[str, Any]) -> bool:
        path: str = scope["path"]
        if self._default:
            if scope["method"] != "POST":
                return False
            last = path.rstrip("/").rpartition("/")[2]
            return last not in INFRA_SEGMENTS and last not in TASK_SEGMENTS
        return path in self._exact or path.startswith(self._prefixes)
