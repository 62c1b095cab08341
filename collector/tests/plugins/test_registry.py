"""Plug-ins: the built-ins come through the collector's own entry points; a module listed under
``[collector] plugins`` adds checks, detectors, metrics and notifiers; each registry is its own
(no process-wide table)."""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferwatch.collector import ConfigError, Registry, load_config
from inferwatch.collector.detectors import UnivariateDrift
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, mixed_frames, windows

PLUGIN = """
from inferwatch.collector.alerts import Notifier
from inferwatch.collector.detect import CheckSettings, Result, check
from inferwatch.collector.detectors import Detector, DetectionResult, Metric
from inferwatch.collector.detectors.params import Count


class RowCountSettings(CheckSettings):
    min_rows: Count = 5


@check("row_count", RowCountSettings)
def row_count(profile, window, settings):
    rows = window.state.rows
    decision = "ok" if rows >= settings.min_rows else "alert"
    return [Result(detector="row_count", score=rows, threshold=settings.min_rows,
                   decision=decision, message=f"{rows} rows (at least {settings.min_rows})")]


class Always(Detector):
    name = "always_ok"

    def __init__(self, limit: Count = 1) -> None:
        self.limit = limit

    def fit(self, reference):
        self._validate_params()
        return self

    def run(self, window):
        return DetectionResult(self.name, "ok", None, None, None, "fine")


gain = Metric("gain", "classification", True, lambda stats: float(stats.labelled))
teams = Notifier("teams", lambda event, base_url: {"text": event.alert.message})
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"iw_plugin_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_the_built_ins_come_through_entry_points() -> None:
    registry = Registry.load()
    assert {"univariate_drift", "outliers", "performance", "error_rate"} <= set(registry.checks)
    assert registry.detectors["univariate_drift"] is UnivariateDrift
    assert set(registry.notifier_names) >= {"json", "slack"}
    assert {"accuracy", "mae", "roc_auc"} <= set(registry.metrics)


def test_a_plugin_module_adds_its_check_detector_metric_and_notifier(plugin: str) -> None:
    registry = Registry.load([plugin])
    assert registry.checks["row_count"].settings().min_rows == 5
    assert registry.detectors["always_ok"](limit=2).fit(None).run(None).decision == "ok"
    assert registry.resolve_metric("gain").name == "gain"
    assert "teams" in registry.notifier_names
    # Registries are the runtime's, not the process's: one built without the plug-in lacks it.
    assert "row_count" not in Registry.load().checks
    config = load_config(
        None,
        plugins=[plugin],
        models={
            "m": {
                "detectors": {"row_count": {"min_rows": 10}},
                "alerts": {
                    "checks": ["row_count"],
                    "webhooks": [{"url": "http://x/", "format": "teams"}],
                },
            }
        },
    )
    assert config.model("m").check("row_count").model_dump()["min_rows"] == 10
    with pytest.raises(ConfigError, match="row_count has unknown setting"):
        load_config(None, plugins=[plugin], models={"m": {"detectors": {"row_count": {"x": 1}}}})
    with pytest.raises(ConfigError, match="no check named 'row_count'"):
        load_config(None, models={"m": {"detectors": {"row_count": {}}}})


def test_plugin_modules_that_cannot_serve_are_refused(plugin: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot import 'no_such_plugin_module'"):
        Registry.load(["no_such_plugin_module"])
    (tmp_path / "iw_empty_plugin.py").write_text("X = 1\n")
    with pytest.raises(ConfigError, match="defines no check, detector, metric or notifier"):
        Registry.load(["iw_empty_plugin"])
    clash = tmp_path / "iw_clash_plugin.py"
    clash.write_text(
        "from inferwatch.collector.detect import CheckSettings, check\n"
        "@check('error_rate', CheckSettings)\n"
        "def error_rate(profile, window, settings):\n    return []\n"
    )
    with pytest.raises(ConfigError, match="two checks are named 'error_rate'"):
        Registry.load(["iw_clash_plugin"])
    sys.modules.pop("iw_empty_plugin", None)
    sys.modules.pop("iw_clash_plugin", None)


def test_a_collector_runs_the_checks_of_the_plugins_its_file_lists(
    plugin: str, tmp_path: Path, make_sender: Any
) -> None:
    from inferwatch_testkit.collector import start_collector

    path = tmp_path / "collector.toml"
    path.write_text(
        f'[collector]\nplugins = ["{plugin}"]\ndb = "sqlite:///{tmp_path}/c.db"\n'
        "tick_seconds = 0.05\n"
        "[models.m]\nwindow = 60\nallowed_lateness = 0\n"
        "detectors = { row_count = { min_rows = 10 } }\n"
    )
    clock = FakeClock(T0)
    collector = start_collector(load_config(path), clock)
    try:
        sender = make_sender(collector.url)
        inputs, outputs = mixed_frames(np.random.default_rng(0), 4)
        sender.send("m", "1", int((T0 + 1) * 1e9), inputs, [f"r{i}" for i in range(4)], outputs)
        sender.flush()
        with collector.client() as client:
            wait_for(lambda: windows(client, "m"), what="the window")
            clock.advance_to(T0 + 61)
            (window,) = wait_for(
                lambda: (w := windows(client, "m")) and w[0]["evaluated_at"] and w,
                what="the evaluation",
            )
        (found,) = [r for r in window["results"] if r["detector"] == "row_count"]
        assert (found["decision"], found["severity"], found["score"]) == ("alert", "warning", 4)
        assert found["message"] == "4 rows (at least 10)"
    finally:
        collector.stop()


def test_the_check_docs_architecture_shows_loads_and_validates_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = (Path(__file__).parents[3] / "docs" / "architecture.md").read_text()
    example = doc.split("```python\n# mypkg/row_count.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "doc_row_count.py").write_text(example)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = Registry.load(["doc_row_count"])
        assert "row_count" in registry.check_names
        config = load_config(
            None, models={"m": {"detectors": {"row_count": {"min_rows": 3}}}}, registry=registry
        )
        assert config.model("m").check("row_count").model_dump()["min_rows"] == 3
        with pytest.raises(ConfigError, match=r"row_count\.min_rows"):
            load_config(
                None,
                models={"m": {"detectors": {"row_count": {"min_rows": -1}}}},
                registry=registry,
            )
    finally:
        sys.modules.pop("doc_row_count", None)


DOCS = Path(__file__).parents[3] / "docs"


def documented_defaults(doc: str, heading: str) -> dict[str, dict[str, Any]]:
    """The table rows under ``heading``: each check named in a row's first cell, with the
    ``key = value`` settings its last cell gives."""
    section = doc.split(heading, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, Any]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 2:
            continue
        # What a parenthesis says is a condition or an alternative, not the default.
        stated = re.sub(r"\([^()]*\)", "", cells[-1])
        settings = re.findall(r"`(\w+ = [^`]+)`", stated)
        for name in re.findall(r"`(\w+)`", cells[0]):
            rows[name] = tomllib.loads("\n".join(settings))
    return rows


@pytest.mark.parametrize(
    ("doc", "heading"),
    [("collector.md", "## Checks"), ("detectors.md", "Settings come from the model's")],
)
def test_the_docs_tables_of_checks_give_their_real_defaults(doc: str, heading: str) -> None:
    registry = Registry.load()
    rows = documented_defaults((DOCS / doc).read_text(), heading)
    unknown = set(rows) - set(registry.check_names)
    assert not unknown, f"docs/{doc} lists checks that do not exist: {unknown}"
    if doc == "collector.md":  # the one table of every built-in check
        missing = set(registry.check_names) - set(rows)
        assert not missing, f"docs/{doc} lacks the checks {missing}"
    for name, documented in rows.items():
        defaults = registry.check_settings(name)().model_dump(mode="json")
        for key, value in documented.items():
            assert key in defaults, f"docs/{doc}: {name} has no setting {key}"
            assert defaults[key] == value, f"docs/{doc}: {name}.{key} is {defaults[key]!r}"
