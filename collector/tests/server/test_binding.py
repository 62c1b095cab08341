"""``inferwatch collector`` without API keys listens on loopback only, unless told otherwise; with
keys, none of them reaches its output (docs/security.md, docs/cli.md)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from inferwatch_testkit import free_port, wait_for

INFERWATCH = Path(sys.executable).parent / "inferwatch"
# docs/cli.md: no API keys and an address beyond loopback.
EXIT_UNPROTECTED = 4


def hash_key(key: str) -> str:
    """The configured form of a key, as docs/security.md gives it."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Started:
    def __init__(self, args: Sequence[str], tmp_path: Path) -> None:
        self.port = free_port()
        command = [INFERWATCH, "collector", "--db", f"sqlite:///{tmp_path / 'c.db'}"]
        command += ["--port", str(self.port), *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(self.process.communicate()[0].decode())
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> str:
        """Its output (stdout and stderr), once stopped as Ctrl-C stops it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=60)
        return output.decode()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[Sequence[str]], Started]]:
    started: list[Started] = []

    def run(args: Sequence[str]) -> Started:
        started.append(Started(args, tmp_path))
        return started[-1]

    yield run
    for collector in started:
        collector.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_without_keys_it_refuses_to_listen_beyond_loopback(tmp_path, host) -> None:
    collector = Started(["--host", host], tmp_path)
    assert collector.process.wait(120) == EXIT_UNPROTECTED
    err = collector.stop()
    assert err.startswith(
        f"inferwatch: error: the collector has no API keys and would listen on {host}, beyond "
        "loopback"
    )
    assert "--insecure-no-auth" in err


@pytest.mark.parametrize("how", ["flag", "file"])
def test_told_explicitly_it_listens_beyond_loopback_and_warns(start, tmp_path, how) -> None:
    if how == "flag":
        args = ["--host", "0.0.0.0", "--insecure-no-auth"]
    else:
        config = tmp_path / "collector.toml"
        config.write_text('[collector]\nhost = "0.0.0.0"\ninsecure_no_auth = true\n')
        args = ["--config", str(config)]
    collector = start([*args, "--log-level", "warning"])
    wait_for(collector.healthy, timeout=120, what="the collector")
    err = collector.stop()
    assert "inferwatch: warning: no authentication on 0.0.0.0 (--insecure-no-auth)" in err


def test_on_loopback_without_keys_it_says_so(start) -> None:
    collector = start([])
    wait_for(collector.healthy, timeout=120, what="the collector")
    assert httpx.get(f"{collector.url}/v1/models").status_code == 200
    err = collector.stop()
    assert "inferwatch: info: no authentication (loopback only): listening on 127.0.0.1" in err


def test_with_keys_it_listens_anywhere_and_logs_no_key(start, tmp_path) -> None:
    plain, hashed, wrong = "plain-key-7", "hashed-key-8", "wrong-key-9"
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[collector]\nhost = "0.0.0.0"\napi_keys = ["{plain}"]\n'
        f'[[collector.keys]]\nname = "svc"\nhash = "{hash_key(hashed)}"\nscopes = ["write"]\n'
    )
    collector = start(["--config", str(config)])  # the default log level, info
    wait_for(collector.healthy, timeout=120, what="the collector")
    with httpx.Client(base_url=collector.url) as client:
        assert (
            client.get("/v1/models", headers={"Authorization": f"Bearer {wrong}"}).status_code
            == 401
        )
        assert (
            client.get("/v1/models", headers={"Authorization": f"Bearer {hashed}"}).status_code
            == 403
        )
        ok = client.get("/v1/models", headers={"Authorization": f"Bearer {plain}"})
        assert ok.status_code == 200
    err = collector.stop()
    assert "GET /v1/models" in err  # uvicorn's access log: the output was captured
    for key in (plain, hashed, wrong):
        assert key not in err


def test_hash_key_prints_the_hash_of_a_key_on_stdin() -> None:
    printed = subprocess.run(
        [INFERWATCH, "collector", "hash-key"], input=b"my-key\n", capture_output=True, check=True
    )
    assert printed.stdout.decode() == hash_key("my-key") + "\n"
    assert hash_key("my-key").startswith("sha256:") and len(hash_key("my-key")) == 7 + 64
    empty = subprocess.run([INFERWATCH, "collector", "hash-key"], input=b"", capture_output=True)
    assert empty.returncode == 2 and b"no key on stdin" in empty.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_addresses(host, loopback) -> None:
    from inferwatch.collector.server.cli import is_loopback

    assert is_loopback(host) is loopback
