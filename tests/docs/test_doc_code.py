"""The Python blocks of the library-usage docs, run as written: each page's blocks in their order
in one namespace, as in `python -m asyncio` (inferwatch_testkit.docs), against a real collector on
127.0.0.1 that `INFERWATCH_ENDPOINT` names, as a reader's would be.

NOT_RUN lists the blocks marked `<!-- not run: why -->`, so that a new one is a decision."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import inferwatch
from inferwatch.collector import load_config
from inferwatch_testkit.collector import RunningCollector, start_collector
from inferwatch_testkit.docs import CodeBlock, python_blocks, run_block

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("detectors.md", "labels-and-reference.md", "alerts.md")

# (page, the block's number on the page from 1): why a reader cannot run it here.
NOT_RUN = {
    ("labels-and-reference.md", 4): "needs tqdm, which is not a dependency",
    ("labels-and-reference.md", 5): "posts to a webhook URL of yours",
}


def blocks(page: str) -> list[CodeBlock]:
    return python_blocks((DOCS / page).read_text())


@pytest.fixture
def collector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningCollector]:
    running = start_collector(
        load_config(None, db=f"sqlite:///{tmp_path / 'collector.db'}", tick_seconds=0.05)
    )
    monkeypatch.setenv("INFERWATCH_ENDPOINT", running.url)
    monkeypatch.delenv("INFERWATCH_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    yield running
    inferwatch.shutdown()
    running.stop()


def test_the_not_run_marks_are_the_listed_ones() -> None:
    marked = {
        (page, number): block.not_run
        for page in PAGES
        for number, block in enumerate(blocks(page), start=1)
        if block.not_run is not None
    }
    assert marked == NOT_RUN


def run_page(page: str) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    started = time.perf_counter()
    ran = 0
    for number, block in enumerate(blocks(page), start=1):
        if block.not_run is None:
            run_block(block.code, namespace, f"docs/{page}, block {number}")
            ran += 1
    assert ran > 0
    # Examples a reader waits on for long are examples a reader does not run.
    assert time.perf_counter() - started < 10, page


@pytest.mark.parametrize("page", PAGES)
def test_every_block_of_the_page_runs_as_written(page: str, collector: RunningCollector) -> None:
    run_page(page)


def test_the_labels_page_sends_to_the_collector_the_environment_names(
    collector: RunningCollector,
) -> None:
    run_page("labels-and-reference.md")
    with collector.client() as client:
        reference = client.get("/v1/models/credit/versions/3/reference")
        assert reference.status_code == 200, reference.text
        assert reference.json()["rows"] == 1000
        # The label blocks stored their labels there: sending one again replaces it.
        again = client.post(
            "/v1/labels",
            json={"model": "credit", "labels": [{"prediction_id": "0190a3c2-...", "label": 1}]},
        )
        assert again.json()["replaced"] == 1, again.json()
