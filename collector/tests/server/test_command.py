"""``inferwatch collector``: the collector's command, as the SDK's ``inferwatch`` runs it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from inferwatch.cli import main
from inferwatch_testkit import free_port
from inferwatch_testkit.collector import SpanSender, mixed_frames

VENV_BIN = Path(sys.executable).parent


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the collector did not become healthy in 30 s")


def test_collector_command_serves_otlp_and_the_api(tmp_path, capsys):
    port = free_port()
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\nport = {port}\ndb = "sqlite:///{tmp_path}/wrong.db"\n')
    db = f"sqlite:///{tmp_path}/collector.db"
    process = subprocess.Popen(
        [
            VENV_BIN / "inferwatch",
            "collector",
            "--config",
            config,
            "--db",
            db,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        sender = SpanSender(url)
        inputs, outputs = mixed_frames(np.random.default_rng(0), 4)
        sender.send("credit", "3", time.time_ns(), inputs, [f"c-{i}" for i in range(4)], outputs)
        sender.close()
        models = httpx.get(f"{url}/v1/models", timeout=5).json()["models"]
        assert [m["model"] for m in models] == ["credit"]
        assert main(["report", "--model", "credit", "--endpoint", url]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].startswith("Model credit: latest 1 window of 1 h on ")
        # version, rows, labelled; the window's end shows its date too when it ends on the next day
        assert re.search(r"\s3\s+4\s+0\s", table[4]), table[4]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    assert process.returncode == 0
    assert (tmp_path / "collector.db").exists() and not (tmp_path / "wrong.db").exists()


def test_collector_command_rejects_a_bad_database_url(capsys):
    assert main(["collector", "--db", "mysql://nope"]) == 2
    assert "db must be a sqlite:/// or postgresql:// URL" in capsys.readouterr().err
