"""The ``@inferwatch.monitor`` decorator: a thin layer over PredictionRecorder.

The decorated function is called exactly as before and returns the same object (or raises the
same exception); the call is then recorded. Before ``inferwatch.init`` the wrapper only checks
that nothing is configured and calls through.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from inferwatch import contract, diagnostics, export
from inferwatch.recorder import IdSource, PredictionRecorder
from inferwatch.redact import Rules

F = TypeVar("F", bound=Callable[..., Any])

# Per thread and per asyncio task: (sequence number, ids) of the latest monitored call made
# there. The list is never mutated after it is set (it is also the span's ids).
_last_ids: ContextVar[tuple[int, list[str] | None] | None] = ContextVar(
    "inferwatch_last_prediction_ids", default=None
)
_calls = itertools.count(1)


class _LoopCalls(threading.local):
    """The monitored calls an event loop of this thread finished, since that loop last
    started recording here: what sync code around ``asyncio.run`` may be told."""

    loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
    count: int = 0
    last_seq: int = 0
    # The ids of the last one, if it was the outermost coroutine of its task (the coroutine
    # ``asyncio.run`` or ``create_task`` was given), else None.
    last_top_ids: list[str] | None = None


_loop_calls = _LoopCalls()

_SELF_NAMES = ("self", "cls")


def last_prediction_ids() -> list[str]:
    """The prediction ids of the latest monitored call in this thread or asyncio task.

    Set also when the call raised; empty before any monitored call, and after a call made
    while inferwatch was not initialised. A call awaited in another task (``create_task``) sets
    that task's ids, not the caller's.

    Never another call's ids: in code outside an event loop, after an event loop ran monitored
    calls in this thread (``asyncio.run``), it returns the ids of the monitored coroutine that
    ``asyncio.run`` was given, when that was the loop's one monitored call, and otherwise an
    empty list (not the ids of a call made before ``asyncio.run``). Return the ids from the
    async code when it makes several calls.
    """
    own = _last_ids.get()
    own_seq, ids = own if own is not None else (0, None)
    loop_calls = _loop_calls
    if loop_calls.last_seq > own_seq and not _in_event_loop():
        ids = loop_calls.last_top_ids if loop_calls.count == 1 else None
    return list(ids) if ids is not None else []


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _set_last_ids(ids: list[str] | None) -> None:
    _last_ids.set((next(_calls), ids))


def _set_last_ids_in_loop(ids: list[str] | None, frame: object) -> None:
    """As _set_last_ids, for a call finished in a running event loop: also noted for the
    thread, so that sync code around the loop never reads ids older than this call."""
    seq = next(_calls)
    _last_ids.set((seq, ids))
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop_calls = _loop_calls
    if loop_calls.loop is None or loop_calls.loop() is not loop:
        loop_calls.loop, loop_calls.count = weakref.ref(loop), 0
    loop_calls.count += 1
    loop_calls.last_seq = seq
    top = task is not None and getattr(task.get_coro(), "cr_frame", None) is frame
    loop_calls.last_top_ids = ids if top else None


def monitor(
    model: str,
    version: str = contract.DEFAULT_VERSION,
    task: str | None = None,
    *,
    id_from: IdSource | None = None,
    feature_names: Sequence[str] | None = None,
    classes: Sequence[object] | None = None,
    inputs: str | None = None,
    redact: Rules | None = None,
) -> Callable[[F], F]:
    """Record every call of the decorated function (or method, sync or async) as a prediction.

    ``inputs`` names the parameter holding the model inputs; by default the first one that is
    not ``self`` or ``cls``. ``redact`` maps input features to "drop" or "hash" (e.g.
    ``{"ssn": "drop", "email": "hash"}``): they never leave the process as they are. See
    PredictionRecorder for the other arguments.
    """
    recorder = PredictionRecorder(
        model,
        version,
        task,
        id_from=id_from,
        feature_names=feature_names,
        classes=classes,
        redact=redact,
    )

    def decorate(fn: F) -> F:
        if isinstance(fn, staticmethod | classmethod):
            return cast(F, type(fn)(decorate(fn.__func__)))
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@inferwatch.monitor cannot wrap the generator function {fn.__qualname__}: "
                "decorate the function that returns the predictions"
            )
        pick = _input_picker(fn, inputs)
        if inspect.iscoroutinefunction(fn):
            return cast(F, _async_wrapper(fn, pick, recorder))
        return cast(F, _sync_wrapper(fn, pick, recorder))

    return decorate


def _sync_wrapper(fn: Callable[..., Any], pick: _Picker, recorder: PredictionRecorder) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if export.active() is None:
            _set_last_ids(None)
            return fn(*args, **kwargs)
        start_ns = time.time_ns()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _set_last_ids(_observe(recorder, pick, args, kwargs, None, start_ns, exc))
            raise
        _set_last_ids(_observe(recorder, pick, args, kwargs, result, start_ns, None))
        return result

    return wrapper


def _async_wrapper(fn: Callable[..., Any], pick: _Picker, recorder: PredictionRecorder) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        # This call's frame, to tell whether it is the coroutine its task runs.
        frame = inspect.currentframe()
        if export.active() is None:
            _set_last_ids_in_loop(None, frame)
            return await fn(*args, **kwargs)
        start_ns = time.time_ns()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            ids = _observe(recorder, pick, args, kwargs, None, start_ns, exc)
            _set_last_ids_in_loop(ids, frame)
            raise
        ids = _observe(recorder, pick, args, kwargs, result, start_ns, None)
        _set_last_ids_in_loop(ids, frame)
        return result

    return wrapper


def _observe(
    recorder: PredictionRecorder,
    pick: _Picker,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: object,
    start_ns: int,
    error: BaseException | None,
) -> list[str] | None:
    """Record the call; its prediction ids (None if even those could not be made)."""
    end_ns = time.time_ns()
    ids = None
    try:
        inputs = pick(args, kwargs)
        ids = recorder.prediction_ids(inputs)
        recorder.record(inputs, result, ids=ids, start_ns=start_ns, end_ns=end_ns, error=error)
    except Exception as exc:
        diagnostics.monitoring_error(recorder.model, "recording the call", exc)
    return ids


_Picker = Callable[[tuple[Any, ...], dict[str, Any]], object]


def _input_picker(fn: Callable[..., Any], name: str | None) -> _Picker:
    """A function taking a call's (args, kwargs) to the argument holding the model inputs."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature (some builtins): the first argument
        return lambda args, kwargs: args[0] if args else None
    if name is not None:
        chosen = [p for p in params if p.name == name]
        if not chosen:
            raise TypeError(
                f"@inferwatch.monitor(inputs={name!r}): {fn.__qualname__} has no parameter "
                f"{name!r}; its parameters are {[p.name for p in params]}"
            )
        param = chosen[0]
    else:
        candidates = params[1:] if params and params[0].name in _SELF_NAMES else params
        if not candidates:
            return lambda args, kwargs: None
        param = candidates[0]
    index = params.index(param)
    positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    if param.kind is param.VAR_POSITIONAL:
        return lambda args, kwargs: args[index] if len(args) > index else None
    if param.kind is param.VAR_KEYWORD:
        return lambda args, kwargs: kwargs or None
    default = None if param.default is param.empty else param.default
    key = param.name

    def pick(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        if positional and len(args) > index:
            return args[index]
        return kwargs.get(key, default)

    return pick
