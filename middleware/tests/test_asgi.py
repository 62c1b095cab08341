"""The middleware driven at the ASGI level, where the order of messages can be observed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import inferwatch
from inferwatch.middleware import InferwatchMiddleware
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

Message = dict[str, Any]


def http_scope(path: str = "/predict", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Server:
    """Plays the server's side: hands out request chunks and logs every event in order."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.events: list[tuple[str, Any]] = []
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        body = self.chunks.pop(0)
        self.events.append(("server gave", body))
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        self.events.append(("server got", message["type"]))


def json_response_app(events: list[tuple[str, Any]], start_early: bool = False) -> Any:
    """Reads the request one chunk at a time and answers in two chunks."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
        early = start_early
        more = True
        while more:
            message = await receive()
            events.append(("app got", message["body"]))
            more = message["more_body"]
            if early:
                await send(start)
                early = False
                start = {}
        if start:
            await send(start)
        await send({"type": "http.response.body", "body": b"[3.0", "more_body": True})
        events.append(("app continued", None))
        await send({"type": "http.response.body", "body": b"]", "more_body": False})

    return app


async def test_messages_pass_through_at_once_and_the_body_is_not_read_ahead(
    sdk: Receiver,
) -> None:
    server = Server([b'{"input_data": ', b"[[1.0, 2.0]]}"])
    middleware = InferwatchMiddleware(json_response_app(server.events), model="asgi")

    await middleware(http_scope(), server.receive, server.send)

    assert server.events == [
        ("server gave", b'{"input_data": '),
        ("app got", b'{"input_data": '),
        ("server gave", b"[[1.0, 2.0]]}"),
        ("app got", b"[[1.0, 2.0]]}"),
        ("server got", "http.response.start"),
        ("server got", "http.response.body"),
        ("app continued", None),
        ("server got", "http.response.body"),
    ]
    start, first, _ = server.sent
    assert start["headers"][0] == (b"content-type", b"application/json")
    (ids,) = [v.decode() for k, v in start["headers"] if k == b"x-prediction-ids"]
    assert first == {"type": "http.response.body", "body": b"[3.0", "more_body": True}
    assert middleware.stats.recorded == 1
    inferwatch.flush(10)
    span = sdk.span_with_ids(ids.split(","))
    assert span.inputs.rows == 1


async def test_response_started_before_the_request_ended_is_recorded_without_header(
    sdk: Receiver,
) -> None:
    server = Server([b'{"input_data": ', b"[[4.0, 5.0]]}"])
    middleware = InferwatchMiddleware(json_response_app(server.events, True), model="asgi")
    scope = http_scope(headers=[(b"x-prediction-ids", b"early-1")])

    await middleware(scope, server.receive, server.send)

    start = server.sent[0]
    assert all(k != b"x-prediction-ids" for k, _ in start["headers"])
    assert middleware.stats.ids_header_skipped == 1
    assert middleware.stats.recorded == 1
    inferwatch.flush(10)
    span = sdk.span_with_ids(["early-1"])
    np_rows = [list(map(float, col)) for col in span.inputs.features().values()]
    assert np_rows == [[4.0], [5.0]]


async def test_other_scopes_get_the_servers_own_callables() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], receive, send))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    middleware = InferwatchMiddleware(app, model="asgi", routes=["/*"])
    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)

    assert seen == [("lifespan", receive, send), ("websocket", receive, send)]


async def test_latency_runs_from_the_first_receive_to_the_last_body_send(sdk: Receiver) -> None:
    marks: dict[str, int] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        marks["app entered"] = time.time_ns()
        await asyncio.sleep(0.02)  # work before reading the request is not the call's
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[1]", "more_body": True})
        await asyncio.sleep(0.02)
        marks["app sends last"] = time.time_ns()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await asyncio.sleep(0.02)  # nor is work after the response

    async def receive() -> Message:
        marks.setdefault("server receive", time.time_ns())
        return {"type": "http.request", "body": b'{"x": 1.0}', "more_body": False}

    async def send(message: Message) -> None:
        if not message.get("more_body", True):
            marks["server got last"] = time.time_ns()

    middleware = InferwatchMiddleware(app, model="asgi")
    scope = http_scope(headers=[(b"x-prediction-ids", b"timed-1")])
    await middleware(scope, receive, send)
    marks["app returned"] = time.time_ns()

    inferwatch.flush(10)
    span = sdk.span_with_ids(["timed-1"])
    assert marks["app entered"] + 20_000_000 <= span.start_ns <= marks["server receive"]
    assert marks["app sends last"] <= span.end_ns <= marks["server got last"]
    assert span.end_ns < marks["app returned"] - 20_000_000
