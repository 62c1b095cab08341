"""[[collector.keys]] and api_keys: keys hashed as they load, compared in constant time, never
quoted in an error."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from inferwatch.collector import load_config
from inferwatch.collector.settings import ConfigError, find_key, hash_key
from inferwatch.collector.settings import keys as keys_module

PLAIN = "plain-key-1"
HASHED = "hashed-key-2"


def test_the_documented_table_loads_with_hashes_only(tmp_path: Path) -> None:
    file = tmp_path / "collector.toml"
    file.write_text(
        f"""
[collector]
api_keys = ["{PLAIN}"]

[[collector.keys]]
name = "credit-service"
hash = "{hash_key(HASHED).upper().replace("SHA256:", "sha256:")}"
scopes = ["write"]
models = ["credit"]

[[collector.keys]]
name = "grafana"
key = "{PLAIN}-read"
scopes = ["read"]
"""
    )
    config = load_config(file)
    by_name = {key.name: key for key in config.access_keys}
    assert set(by_name) == {"credit-service", "grafana", "api_keys[0]"}
    service = by_name["credit-service"]
    assert service.hash == hash_key(HASHED)  # hex digits in lower case
    assert service.scopes == {"write"} and service.models == ("credit",)
    assert by_name["grafana"].hash == hash_key(f"{PLAIN}-read")
    assert by_name["grafana"].models is None
    simple = by_name["api_keys[0]"]
    assert simple.scopes == {"read", "write", "admin"} and simple.models is None
    assert PLAIN not in repr(config) and PLAIN not in str(config.model_dump())


def test_a_presented_key_is_found_by_its_hash() -> None:
    config = load_config(None, api_keys=[PLAIN, hash_key(HASHED)])
    first, second = config.access_keys
    assert find_key(config.access_keys, PLAIN) is first
    assert find_key(config.access_keys, HASHED.encode()) is second
    assert find_key(config.access_keys, hash_key(HASHED)) is None  # the hash is not the key
    assert find_key(config.access_keys, PLAIN[:-1]) is None
    assert find_key((), PLAIN) is None


def test_every_configured_digest_is_compared_in_constant_time(monkeypatch) -> None:
    config = load_config(None, api_keys=[PLAIN, HASHED, "third-key"])
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", compare)
    assert find_key(config.access_keys, PLAIN) is config.access_keys[0]
    digest = hashlib.sha256(PLAIN.encode()).digest()
    # The match is the first key, and every other one is still compared, digest to digest.
    assert compared == [(digest, key.digest) for key in config.access_keys]


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (
            [{"name": "a", "hash": PLAIN, "scopes": ["read"]}],
            "collector.keys[0].hash must be 'sha256:' and 64 hex digits",
        ),
        (
            [{"name": "a", "key": PLAIN, "hash": hash_key(PLAIN), "scopes": ["read"]}],
            "collector.keys[0]: gives both key and hash; give one",
        ),
        (
            [{"name": "a", "key": PLAIN, "scopes": []}],
            "collector.keys[0].scopes must name at least one of read, write, admin",
        ),
        ([{"name": "a", "key": PLAIN}], "collector.keys[0].scopes is required"),
        ([{"name": "a", "key": PLAIN, "scopes": ["delete"]}], "collector.keys[0].scopes"),
        (
            [
                {"name": "a", "key": PLAIN, "scopes": ["read"]},
                {"name": "b", "hash": hash_key(PLAIN), "scopes": ["write"]},
            ],
            "collector.keys has two keys of the same hash: 'a' and 'b'",
        ),
        (
            [
                {"name": "a", "key": PLAIN, "scopes": ["read"]},
                {"name": "a", "key": HASHED, "scopes": ["read"]},
            ],
            "collector.keys has two keys named 'a'",
        ),
        ([{"name": "a", "key": PLAIN, "scopes": ["read"], "secret": PLAIN}], "secret"),
    ],
)
def test_a_bad_key_table_is_refused_without_quoting_the_key(keys, problem) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, keys=keys)
    assert problem in str(refused.value)
    assert PLAIN not in str(refused.value) and HASHED not in str(refused.value)


def test_the_simple_form_refuses_what_is_not_a_key() -> None:
    with pytest.raises(ConfigError, match=r"api_keys\[1\] must be a non-empty string"):
        load_config(None, api_keys=[PLAIN, ""])
    # One key alone is one key, as before.
    (key,) = load_config(None, api_keys=PLAIN).access_keys
    assert key.hash == hash_key(PLAIN)
