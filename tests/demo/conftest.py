"""Fixtures for the demo and example tests. The examples folder and this one go on sys.path:
the tests import the examples' modules (wine, demo_*) and demo_support."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples"))
sys.path.insert(0, str(HERE))

from demo_processes import Servers  # noqa: E402
from demo_support import COLLECTOR_TOML, RunningCollector, start_collector  # noqa: E402


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    """A collector with default settings (models set their own windows through the API)."""
    workdir = tmp_path_factory.mktemp("collector")
    config = workdir / "collector.toml"
    config.write_text(COLLECTOR_TOML)
    servers = Servers()
    try:
        yield start_collector(servers, workdir, config)
    finally:
        servers.stop_all()
