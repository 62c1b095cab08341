"""API keys: who may call the collector, for what, and on which models (docs/security.md).

In the collector's TOML, each key is a table of ``[[collector.keys]]``::

    [[collector.keys]]
    name = "credit-service"
    hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    scopes = ["write"]        # read, write (spans, labels, references), admin (config)
    models = ["credit"]       # omit for every model

``key = "<plaintext>"`` may stand for ``hash``: it is hashed as the file loads and only the hash
is kept. ``inferwatch collector hash-key`` prints the hash of a key read from stdin. The simple
form, ``api_keys = ["<plaintext or sha256:...>", ...]``, gives full-access keys.

A presented key is hashed and its digest compared with every configured digest in constant time
(``hmac.compare_digest``), so neither the keys nor how much of one matched leak through timing.
No message here or in the errors the settings raise contains a key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, model_validator

from inferwatch.collector.detectors.params import Table

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
HASH_PREFIX = "sha256:"
_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def hash_key(key: str) -> str:
    """The form a key is configured and stored as: ``sha256:<64 hex digits>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def is_hash(value: str) -> bool:
    return _HASH.fullmatch(value) is not None


def _a_hash(value: object) -> object:
    # The message never quotes the value: it may be a key put in the wrong field.
    if not isinstance(value, str) or not is_hash(value.lower()):
        raise ValueError(
            "must be 'sha256:' and 64 hex digits (inferwatch collector hash-key prints it)"
        )
    return value.lower()


def _named(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _some_scopes(scopes: frozenset[Scope]) -> frozenset[Scope]:
    if not scopes:
        raise ValueError(f"must name at least one of {', '.join(SCOPES)}")
    return scopes


class ApiKey(Table):
    name: Annotated[str, AfterValidator(_named)]
    hash: Annotated[str, BeforeValidator(_a_hash)]
    scopes: Annotated[frozenset[Scope], AfterValidator(_some_scopes)]
    # None: every model.
    models: tuple[Annotated[str, AfterValidator(_named)], ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _plaintext_hashed(cls, data: Any) -> Any:
        """``key = "<plaintext>"`` becomes its hash before anything else sees it."""
        if not isinstance(data, Mapping) or "key" not in data:
            return data
        table = dict(data)
        plaintext = table.pop("key")
        if "hash" in table:
            raise ValueError("gives both key and hash; give one")
        if not isinstance(plaintext, str) or not plaintext:
            raise ValueError("key must be a non-empty string")
        table["hash"] = hash_key(plaintext)
        return table

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.hash.removeprefix(HASH_PREFIX))

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    def may_touch(self, model: str) -> bool:
        return self.models is None or model in self.models


def find_key(keys: Iterable[ApiKey], presented: str | bytes) -> ApiKey | None:
    """The configured key ``presented`` is, or None. Every digest is compared, matching or not."""
    raw = presented.encode() if isinstance(presented, str) else presented
    digest = hashlib.sha256(raw).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key
    return found


def simple_keys(values: object) -> list[dict[str, Any]]:
    """``api_keys = [...]`` (one key alone, or a list; each plaintext or a hash) as full-access
    key tables named ``api_keys[0]``, ``api_keys[1]``, ..."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, Sequence):
        raise ValueError("api_keys must be a list of keys (strings)")
    tables = []
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise ValueError(f"api_keys[{index}] must be a non-empty string")
        given = {"hash": value} if is_hash(value.lower()) else {"key": value}
        tables.append({"name": f"api_keys[{index}]", "scopes": list(SCOPES), **given})
    return tables


def check_unique(keys: Sequence[ApiKey]) -> Sequence[ApiKey]:
    names = [key.name for key in keys]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"has two keys named {', '.join(map(repr, twice))}")
    for index, key in enumerate(keys):
        for other in keys[:index]:
            if hmac.compare_digest(key.digest, other.digest):
                raise ValueError(f"has two keys of the same hash: {other.name!r} and {key.name!r}")
    return keys
