"""The collector's dashboard: one static page over the JSON query API (docs/dashboard.md).

GET / serves the page (``index``, a route of the collector's app); its script and style sheet
are under /dashboard/ (``dashboard_assets``). The page itself reads /v1/... with the API key
the user pastes, so these routes need no key.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# The page holds an API key: it may load code and data only from the collector itself, and no
# other site may frame it or learn its URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def dashboard_assets() -> Mount:
    """The page's script and style sheet under ``/dashboard``, for the collector's app."""
    return Mount("/dashboard", app=StaticFiles(directory=STATIC), name="dashboard")
