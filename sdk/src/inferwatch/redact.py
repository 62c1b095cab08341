"""Dropping or hashing named features before a call's inputs are encoded (PII).

``{"ssn": "drop", "email": "hash"}``: ``ssn`` never leaves the process; ``email`` leaves as a
categorical token ``h:<16 hex digits>``, the HMAC-SHA256 of its value under the deployment's
redact key (``inferwatch.init(redact_key=...)`` or $INFERWATCH_REDACT_KEY). A keyed hash, not a
bare one: without the key nobody can hash every SSN or phone number and look the tokens up,
while equal values still give equal tokens, so drift on the feature is still seen. Numbers are
hashed by their float value (``1`` and ``1.0`` give one token); a missing value stays missing.
Without a key a feature to hash is dropped instead (and the span says so): never sent raw.

A name matches a feature (``"age"``, ``"x[3]"``) or a whole block of them (``"embedding"``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from inferwatch.frame import CategoricalColumn, Column, Frame, NumericBlock, categorical

REDACT_KEY_ENV = "INFERWATCH_REDACT_KEY"
ACTIONS = ("drop", "hash")
TOKEN_PREFIX = "h:"
_TOKEN_HEX_DIGITS = 16

Action = Literal["drop", "hash"]
Rules = Mapping[str, Action]


def check_rules(rules: object, what: str = "redact") -> dict[str, Action]:
    """``rules`` as a dict of feature name -> "drop" | "hash"; raises on anything else."""
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise TypeError(f"{what} must map feature names to 'drop' or 'hash', got {rules!r}")
    checked: dict[str, Action] = {}
    for name, action in rules.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}: feature names must be non-empty strings, got {name!r}")
        if action not in ACTIONS:
            raise ValueError(f"{what}[{name!r}] must be 'drop' or 'hash', got {action!r}")
        checked[name] = action
    return checked


def merge(*rule_sets: Rules) -> dict[str, Action]:
    """The union of several rule sets; where they differ on a feature, "drop" wins."""
    merged: dict[str, Action] = {}
    for rules in rule_sets:
        for name, action in rules.items():
            merged[name] = "drop" if "drop" in (action, merged.get(name)) else action
    return merged


def resolve_key(key: str | None) -> bytes | None:
    """The redact key: the one given to ``init``, else $INFERWATCH_REDACT_KEY, else None."""
    value = key if key else os.environ.get(REDACT_KEY_ENV)
    return value.encode("utf-8") if value else None


class Redactor:
    """Applies one rule set to frames; safe to share between threads."""

    def __init__(self, rules: Rules, key: bytes | None) -> None:
        self.rules = dict(rules)
        self._key = key

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, frame: Frame, problems: list[str]) -> Frame:
        """``frame`` with the named features dropped or hashed; what was dropped for want of
        a key is added to ``problems`` (by name)."""
        if not self.rules:
            return frame
        columns: list[Column] = []
        for column in frame.columns:
            if isinstance(column, CategoricalColumn):
                action = self.rules.get(column.name)
                if action is None:
                    columns.append(column)
                elif action == "hash" and self._hashes(column.name, problems):
                    columns.append(self._hash(column.name, column.values(), column))
            else:
                columns.extend(self._numeric(column, problems))
        return Frame(frame.rows, tuple(columns))

    def _numeric(self, block: NumericBlock, problems: list[str]) -> list[Column]:
        # An unnamed block (an image, an embedding) may be named whole.
        whole = self.rules.get(block.name) if block.names is None else None
        names = block.feature_names()
        actions = [whole or self.rules.get(name) for name in names]
        if not any(actions):
            return [block]
        kept = [j for j, action in enumerate(actions) if action is None]
        out: list[Column] = []
        if kept:
            out.append(
                NumericBlock(
                    block.name,
                    np.ascontiguousarray(block.values[:, kept]),
                    tuple(names[j] for j in kept),
                    block.role,
                )
            )
        for j, action in enumerate(actions):
            if action == "hash" and self._hashes(names[j], problems):
                values = [None if math.isnan(v) else v for v in block.values[:, j].tolist()]
                out.append(self._hash(names[j], values, block))
        return out

    def _hashes(self, name: str, problems: list[str]) -> bool:
        if self._key is None:
            problems.append(
                f"{name!r} is to be hashed but no redact key is set (init(redact_key=...) or "
                f"${REDACT_KEY_ENV}); left out"
            )
            return False
        return True

    def _hash(self, name: str, values: Sequence[object], like: Column) -> CategoricalColumn:
        assert self._key is not None
        key = self._key
        tokens: dict[object, str] = {}
        out: list[str | None] = []
        for value in values:
            if value is None:
                out.append(None)
                continue
            token = tokens.get(value)
            if token is None:
                text = repr(float(value)) if isinstance(value, int | float) else str(value)
                digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
                token = tokens[value] = TOKEN_PREFIX + digest[:_TOKEN_HEX_DIGITS]
            out.append(token)
        return categorical(name, out, like.role)
