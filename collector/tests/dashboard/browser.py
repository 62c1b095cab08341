"""Headless Chromium for the dashboard tests: a one-shot DOM dump, and a page driven over the
DevTools protocol (websockets comes with uvicorn[standard]) for tests that type into the page."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from inferwatch_testkit import wait_for

QUIET = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def dump_dom(chromium: str, url: str, profile: Path, budget_ms: int = 5000) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    done = subprocess.run(
        [
            chromium,
            *QUIET,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout.decode()


class Page:
    """One Chromium tab, driven with DevTools protocol calls."""

    def __init__(self, chromium: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                chromium,
                *QUIET,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self._stack = contextlib.ExitStack()
        try:
            port = wait_for(lambda: _devtools_port(profile), 30, "Chromium's DevTools port", 0.1)
            target = wait_for(lambda: _page_target(port), 30, "a page target", 0.1)
            self.socket: ClientConnection = self._stack.enter_context(
                connect(target, max_size=None)
            )
        except BaseException:
            self.close()
            raise

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r} raised {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_until(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value is returned.

        An expression that throws (the page is still loading) counts as not yet.
        """

        def attempt() -> Any:
            try:
                return self.evaluate(expression)
            except RuntimeError:
                return None

        return wait_for(attempt, timeout, expression, 0.1)

    def resize(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (all of it, or the viewport) written to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def text(self, selector: str) -> str:
        found = self.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''"
        )
        return str(found)

    def close(self) -> None:
        self._stack.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)

    def __enter__(self) -> Page:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _devtools_port(profile: Path) -> int | None:
    # Chromium writes the port it picked (for --remote-debugging-port=0) to this file.
    marker = profile / "DevToolsActivePort"
    try:
        first = marker.read_text().splitlines()[0]
    except (FileNotFoundError, IndexError):
        return None
    return int(first)


def _page_target(port: int) -> str | None:
    try:
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
    except httpx.HTTPError:
        return None
    for target in targets:
        if target.get("type") == "page":
            url: str = target["webSocketDebuggerUrl"]
            return url
    return None
