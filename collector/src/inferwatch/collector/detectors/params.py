"""Declared constraints of parameters and settings, and the sentences that name a broken one.

A detector's ``__init__`` annotates each parameter with one of the types below (scikit-learn's
parameter constraints, as pydantic types); ``Detector.fit`` checks the stored parameters against
them, and the collector's settings schema uses the same types for the same settings, so a bad
value is refused when the TOML loads, in the words a detector would use at fit. Defaults live in
one place, the detector's signature: ``default_of(UnivariateDrift, "alpha")``.

Numbers are strict: a boolean, a string or a float with a fraction is not an integer, whatever
pydantic's lax mode would make of it. numpy scalars count as the Python numbers they hold.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic import create_model as _create_model


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (np.int64(3) -> 3)."""
    return value.item() if isinstance(value, np.generic) else value


_PLAIN = BeforeValidator(_plain)


def within(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> AfterValidator:
    """A range check whose message names the whole range (``must be between 0 and 1``): the
    last part of a constrained type, ``Annotated[Int, within(20)]``."""
    if low is not None and high is not None:
        if low_open and high_open:
            phrase = f"between {low:g} and {high:g}"
        elif not low_open and not high_open:
            phrase = f"from {low:g} to {high:g}"
        else:
            phrase = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        phrase = f"greater than {low:g}" if low_open else f"at least {low:g}"
    else:
        assert high is not None
        phrase = f"less than {high:g}" if high_open else f"at most {high:g}"

    def check(value: float) -> float:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number {phrase}, got {value!r}")
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            raise ValueError(f"must be {phrase}, got {value!r}")
        return value

    return AfterValidator(check)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


# An integer (no bool, no float, no string), any value.
Int = Annotated[int, _PLAIN, Strict()]
# A finite real number (an integer is one too), any value.
Number = Annotated[float, _PLAIN, Strict(), AfterValidator(_finite)]
Flag = Annotated[bool, _PLAIN, Strict()]
# A count of things: 1 or more.
Count = Annotated[int, _PLAIN, Strict(), within(1)]
# A count of at least two (bins, folds: one would be no split at all).
AtLeastTwo = Annotated[int, _PLAIN, Strict(), within(2)]
# A seed for a random generator.
Seed = Annotated[int, _PLAIN, Strict(), within(0)]
# A probability strictly between 0 and 1: a false-alarm rate, alpha, a held-out share.
Rate = Annotated[float, _PLAIN, Strict(), within(0, 1, low_open=True, high_open=True)]
# A share of rows, from 0 to 1.
Share = Annotated[float, _PLAIN, Strict(), within(0, 1)]
# A share above 0, up to all of them (a label coverage to wait for).
PositiveShare = Annotated[float, _PLAIN, Strict(), within(0, 1, low_open=True)]
# An effect-size gate, a drop, a delay: 0 or more.
NonNegative = Annotated[float, _PLAIN, Strict(), within(0)]
# How many times the expected rate a window must show: 1 or more.
Ratio = Annotated[float, _PLAIN, Strict(), within(1)]


def default_of(cls: type, name: str) -> Any:
    """The default of ``cls``'s ``__init__`` parameter ``name``: where a setting that mirrors a
    parameter takes its default from."""
    parameter = _signature(cls).parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{cls.__name__}.__init__ has no parameter {name!r} with a default")
    return parameter.default


def annotation_of(cls: type, name: str) -> Any:
    """The declared type of ``cls``'s ``__init__`` parameter ``name``, constraints included."""
    return _signature(cls).parameters[name].annotation


@functools.cache
def _signature(cls: type) -> inspect.Signature:
    # Annotations are strings under ``from __future__ import annotations``: evaluated here, in
    # the module that declares the class.
    return inspect.signature(cls, eval_str=True)


@functools.cache
def params_model(cls: type) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s parameters: their declared types and defaults."""
    fields: dict[str, Any] = {}
    for name, parameter in _signature(cls).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        annotation = (
            Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
        )
        fields[name] = (annotation, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    model: type[BaseModel] = _create_model(f"{cls.__name__}Parameters", __config__=config, **fields)
    return model


def validate_params(cls: type, params: Mapping[str, Any]) -> None:
    """Check ``params`` against ``cls.__init__``'s declared types; ValueError naming what is
    wrong (``alpha must be between 0 and 1, got 5``)."""
    try:
        params_model(cls).model_validate(dict(params))
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


class Table(BaseModel):
    """A table of settings: frozen, strict about its keys, and saying which keys it knows.

    A field may have a TOML name of its own (``window_seconds`` is ``window`` in the file):
    the file's name is what validation takes, what errors list and what dumps show.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        # What a table shows has every key: its schema (the API's answers) says so.
        json_schema_serialization_defaults_required=True,
    )

    @classmethod
    def keys(cls) -> list[str]:
        """The table's keys as the TOML file spells them."""
        return sorted(field.alias or name for name, field in cls.model_fields.items())

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = set(cls.model_fields) | set(cls.keys())
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise ValueError(
                    f"has unknown setting(s) {', '.join(unknown)}; known: {', '.join(cls.keys())}"
                )
        elif data is not None and not isinstance(data, BaseModel):
            raise ValueError(f"must be a table (mapping), got {type(data).__name__}")
        return data


def describe(
    exc: ValidationError,
    where: str = "",
    limit: int = 3,
    tagged: Mapping[str, Collection[str]] | None = None,
) -> str:
    """One sentence per problem (at most ``limit``), each naming the setting by its dotted path
    from ``where``: ``models.credit.detectors.univariate_drift.alpha must be between 0 and 1,
    got 5``. ``tagged``: fields holding a tagged union, and the tags pydantic puts in a path
    after them (``threshold.static.warning`` is ``threshold.warning`` to a user)."""
    problems: list[str] = []
    # A value no member of a union takes gets one error per member: they become one sentence.
    wanted: dict[str, list[str]] = {}
    for error in exc.errors():
        path = _path(where, error["loc"], tagged or {})
        kind = _TYPES.get(error["type"])
        if kind is not None:
            if path not in wanted:
                problems.append(path)
            wanted.setdefault(path, []).append(kind)
            continue
        problems.append(_sentence(error, path))
    for path, kinds in wanted.items():
        got = next(
            e.get("input") for e in exc.errors() if _path(where, e["loc"], tagged or {}) == path
        )
        sentence = f"{path or 'the settings'} must be {' or '.join(dict.fromkeys(kinds))}"
        problems[problems.index(path)] = f"{sentence}, got {_shown(got)}"
    shown = list(dict.fromkeys(problems))[:limit]
    if len(problems) > limit:
        shown.append(f"and {len(problems) - limit} more")
    return "; ".join(shown)


def _path(where: str, location: Sequence[Any], tagged: Mapping[str, Collection[str]]) -> str:
    parts = [where] if where else []
    previous: object = None
    for part in location:
        # pydantic puts union members and validator names in locations: they are not settings.
        if isinstance(part, str) and (
            part.startswith(("function-", "tagged-union", "union["))
            or part in _MEMBER_NAMES
            or part in tagged.get(str(previous), ())
        ):
            continue
        previous = part
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


# Names pydantic gives union members in error locations.
_MEMBER_NAMES = frozenset({"int", "float", "str", "bool", "list", "dict", "none"})


def _sentence(error: Any, name: str) -> str:
    kind, context = error["type"], error.get("ctx") or {}
    subject = name or "the settings"
    if kind == "value_error":
        message = str(context.get("error", error["msg"]))
        joined = message.startswith(("must ", "has ", "is ", "needs "))
        return f"{subject} {message}" if joined else f"{subject}: {message}"
    got = f", got {_shown(error.get('input'))}"
    if kind == "missing":
        return f"{subject} is required"
    if kind == "union_tag_invalid":
        tags = context.get("expected_tags", "")
        return f"{subject}.mode must be one of {tags}, got {context.get('tag')!r}"
    if kind in ("literal_error", "enum"):
        expected = str(context.get("expected", ""))
        choice = "one of " if "," in expected else ""
        return f"{subject} must be {choice}{expected}{got}"
    wanted = _TYPES.get(kind)
    if wanted is not None:
        return f"{subject} must be {wanted}{got}"
    return f"{subject}: {error['msg']}{got}"


_TYPES = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a table (mapping)",
    "model_type": "a table (mapping)",
    "model_attributes_type": "a table (mapping)",
    "list_type": "a list",
    "tuple_type": "a list",
    "union_tag_not_found": "a table with a mode",
}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
