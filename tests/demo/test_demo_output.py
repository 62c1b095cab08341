"""What the demo prints while it waits and how it fits its lines, without running the demo: a
real slow-starting server for the readiness wait, the final table's drift column on its own."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from demo_processes import Servers, StartError, wait_ready
from demo_watch import fit_lines

from inferwatch_testkit import free_port

# A server that starts listening only after a while, as the collector and BentoML do.
SLOW_SERVER = """
import http.server, sys, time
time.sleep(float(sys.argv[2]))
http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=int(sys.argv[1]),
                 bind="127.0.0.1")
"""


def test_the_wait_for_servers_says_what_it_waits_for_every_few_seconds(tmp_path: Path) -> None:
    port = free_port()
    servers = Servers()
    try:
        server = servers.start(
            "the slow server",
            f"http://127.0.0.1:{port}",
            [sys.executable, "-c", SLOW_SERVER, str(port), "2.5"],
            tmp_path / "slow.log",
            cwd=tmp_path,
        )
        said: list[str] = []
        wait_ready([(server, "/")], timeout=60, progress=said.append, every=1.0)
    finally:
        servers.stop_all()
    # At least 2.5 s of waiting, said every second.
    assert len(said) >= 2, said
    found = [re.fullmatch(r"  waiting for the slow server to start \((\d+) s\)", s) for s in said]
    assert all(found), said
    seconds = [int(m.group(1)) for m in found if m]
    assert seconds[0] >= 1 and seconds == sorted(set(seconds)), said


def test_the_wait_for_a_server_that_exits_names_it_and_shows_its_log(tmp_path: Path) -> None:
    servers = Servers()
    try:
        server = servers.start(
            "the broken server",
            f"http://127.0.0.1:{free_port()}",
            [sys.executable, "-c", "import sys; print('no config'); sys.exit(3)"],
            tmp_path / "broken.log",
        )
        with pytest.raises(
            StartError, match=r"the broken server exited with status 3[\s\S]*no config"
        ):
            wait_ready([(server, "/")], timeout=60, progress=lambda line: None)
    finally:
        servers.stop_all()


FEATURES = ["alcalinity_of_ash", "color_intensity", "flavanoids", "hue", "malic_acid"]


@pytest.mark.parametrize("width", [20, 39, 60])
def test_the_drift_column_wraps_within_its_width_and_says_how_many_more(width: int) -> None:
    items = ["label_drift", "multivariate_drift", *FEATURES, "od280_od315_of_diluted_wines"]
    lines = fit_lines(items, width, 3)
    assert 1 <= len(lines) <= 3 and all(len(line) <= width for line in lines)
    text = " ".join(lines)
    shown = [item for item in items if item in text]
    assert shown == items[: len(shown)]  # the first ones, in order
    hidden = len(items) - len(shown)
    assert text.endswith(f"+{hidden} more") if hidden else text.endswith(items[-1])
    assert fit_lines([], width, 3) == ["-"]
