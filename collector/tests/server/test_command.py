"""``inferwatch collector``: the collector's command, as the SDK's ``inferwatch`` runs it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from inferwatch.cli import main
from inferwatch.collector.server.cli import cannot_listen
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


def test_collector_command_refuses_a_file_that_is_not_a_database(tmp_path, capsys):
    junk = tmp_path / "notes.db"
    junk.write_text("not a database\n")
    argv = ["collector", "--db", f"sqlite:///{junk}", "--port", str(free_port())]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        f"inferwatch: error: cannot open {junk} as a SQLite database: file is not a database\n"
    ), err
    assert "listening on" not in err
    assert junk.read_text() == "not a database\n"


def test_collector_command_on_a_port_in_use_says_so_and_leaves_no_database(tmp_path):
    port = free_port()
    db = tmp_path / "collector.db"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            [VENV_BIN / "inferwatch", "collector", "--port", str(port), "--db", f"sqlite:///{db}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 5, done.stderr
    # The one sentence alone: no "listening on" before it that it contradicts.
    assert done.stderr == (
        f"inferwatch: error: cannot listen on 127.0.0.1:{port}: the port is in use (another "
        "collector or program listens there); stop it, or choose another port with --port\n"
    ), done.stderr
    assert "Traceback" not in done.stderr and "Errno" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no database file, no -wal or -shm


def test_a_free_port_and_one_in_time_wait_can_be_listened_on():
    port = free_port()
    assert cannot_listen("127.0.0.1", port) is None
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end waits in TIME_WAIT
        client.close()
    assert cannot_listen("127.0.0.1", port) is None
    assert "cannot listen on 203.0.113.7:" in (cannot_listen("203.0.113.7", port) or "")
