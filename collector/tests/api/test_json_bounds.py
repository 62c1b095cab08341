"""The raw-body check that spares a JSON body the walk over every node: it may only ever say
"within bounds" when the walk (``_check_json``) finds nothing; anything else is walked."""

from __future__ import annotations

import json

import pytest

from inferwatch.collector.api.common import MAX_JSON_DEPTH, _check_json, _plainly_within_bounds
from inferwatch.collector.api.errors import ApiError


def walk_accepts(body: bytes) -> bool:
    try:
        _check_json(json.loads(body), "the body")
    except ApiError:
        return False
    return True


def nested(depth: int, inside: str = "1") -> bytes:
    return ("[" * depth + inside + "]" * depth).encode()


def alternating(depth: int) -> bytes:
    """Lists and objects in turn, each holding the next and an empty one of each kind: nested
    ``depth + 1`` deep (the empty ones inside the last)."""
    value: object = 1
    for level in range(depth):
        value = [value, {}, []] if level % 2 else {"a": value, "b": [], "c": {}}
    return json.dumps(value).encode()


LABELS = json.dumps(
    {"model": "m", "labels": [{"prediction_id": f"p{i}", "label": i % 3} for i in range(100)]}
).encode()

BODIES = [
    LABELS,
    b"{}",
    b"[]",
    nested(MAX_JSON_DEPTH),
    nested(MAX_JSON_DEPTH + 1),
    nested(MAX_JSON_DEPTH, '"]]]]"'),  # brackets inside a string are not nesting
    nested(MAX_JSON_DEPTH - 1, '"[[[[[[[["'),
    ('{"a": ' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH).encode(),
    ('{"a": ' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)).encode(),
    alternating(MAX_JSON_DEPTH - 1),
    alternating(MAX_JSON_DEPTH),
    b'{"k[": "v{", "x": ["}", "]"]}',
    '{"name": "Zoë, 東京 [ok]"}'.encode(),  # non-ASCII text, no escape
    b'{"s": "\\ud800"}',  # a lone surrogate, escaped
    b'{"s": "\\"[[[[\\""}',  # escaped quotes around brackets
    '{"s": "\ud800"}'.encode("utf-8", "surrogatepass"),  # a surrogate's raw bytes
    b'{"n": ' + b"9" * 400 + b"}",  # past a float's range
    b'{"n": ' + b"1" * 308 + b"}",  # within it
    b'{"s": "' + b"7" * 400 + b'"}',  # digits in a string
    json.dumps(nested(MAX_JSON_DEPTH + 1).decode()).encode("utf-16"),
    json.dumps({"k": "[" * 40}).encode("utf-16-le"),
    json.dumps({"k": "\u225b\u4e22" * 20, "n": [[[1]]]}).encode("utf-16-be"),
    json.dumps({"k": 1}).encode("utf-32"),
]


@pytest.mark.parametrize("body", BODIES)
def test_within_bounds_only_when_the_walk_agrees(body: bytes) -> None:
    if _plainly_within_bounds(body):
        assert walk_accepts(body)


def test_a_labels_body_is_not_walked() -> None:
    # The point of the check: the common body is accepted without the walk.
    assert _plainly_within_bounds(LABELS)
    assert _plainly_within_bounds(nested(MAX_JSON_DEPTH, '"]]]]"'))
    assert _plainly_within_bounds(alternating(MAX_JSON_DEPTH - 1))
    assert not _plainly_within_bounds(nested(MAX_JSON_DEPTH + 1))
    assert not _plainly_within_bounds(alternating(MAX_JSON_DEPTH))
    assert not _plainly_within_bounds(b'{"s": "\\ud800"}')
