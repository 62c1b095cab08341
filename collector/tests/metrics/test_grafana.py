"""examples/grafana: the alerting rules pass promtool (syntax and their unit tests), the
dashboard is a well-formed Grafana dashboard whose queries parse, and every metric either names
is on a live collector's /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import Scenario
from .helpers import scrape

GRAFANA = Path(__file__).resolve().parents[3] / "examples" / "grafana"
RULES = GRAFANA / "inferwatch-rules.yml"
RULE_TESTS = GRAFANA / "inferwatch-rules.test.yml"
DASHBOARD = GRAFANA / "inferwatch-dashboard.json"
METRIC = re.compile(r"\binferwatch_[a-z0-9_]+\b")
PANEL_TYPES = {"row", "stat", "table", "timeseries"}
# What Grafana puts in a query in place of its variables, for promtool to parse it.
GRAFANA_BUILTINS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
BUILTIN_NAMES = {name.removeprefix("$") for name in GRAFANA_BUILTINS}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not installed: `make test` installs it as root (Debian's prometheus "
            "package); otherwise `apt-get install -y prometheus` to run these tests"
        )
    return found


def run(*args: str, cwd: Path = GRAFANA) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for p in panels(board) for t in p["targets"]]
    queries += [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return queries


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    tool = promtool()
    assert "SUCCESS" in run(tool, "check", "rules", str(RULES))
    assert "SUCCESS" in run(tool, "test", "rules", str(RULE_TESTS))


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each query, its variables filled in, as a recording rule that promtool parses."""
    tool = promtool()
    rules = []
    for number, expr in enumerate(expressions(dashboard())):
        if expr.startswith("label_values("):
            # A Grafana function: its inner selector is the query.
            expr = expr.removeprefix("label_values(").rsplit(",", 1)[0]
        for name, text in GRAFANA_BUILTINS.items():
            expr = expr.replace(name, text)
        expr = re.sub(r"\$\w+", ".*", expr)
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    # JSON is YAML: promtool reads it as a rules file.
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run(tool, "check", "rules", str(path))


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # The overview and the drill-down are driven by these.
    assert {"model", "version", "check", "feature"} <= set(variables)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows[:2] == ["Model overview", "Feature drill-down"]
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
    used = {name for expr in expressions(board) for name in re.findall(r"\$(\w+)", expr)}
    assert used - BUILTIN_NAMES <= set(variables), used - set(variables)


def test_every_metric_the_rules_and_dashboard_name_is_on_metrics(scenario: Scenario) -> None:
    with scenario.collector.client() as client:
        exposed = {name for name, _ in scrape(client)}
    named = set(METRIC.findall(RULES.read_text())) | {
        name for expr in expressions(dashboard()) for name in METRIC.findall(expr)
    }
    assert len(named) > 20
    assert named - exposed == set()


def test_docs_list_every_series(scenario: Scenario) -> None:
    docs = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    with scenario.collector.client() as client:
        exposed = {name for name, _ in scrape(client)}
    for name in exposed:
        family = re.sub(r"_(created|bucket|count|sum)$", "", name)
        if family.startswith("inferwatch_receiver_"):
            part = family.removeprefix("inferwatch_receiver_").removesuffix("_total")
            assert re.search(rf"\b{part}\b", docs), f"docs/metrics.md lacks the receiver's {part}"
        elif family.endswith("_total") or family + "_total" not in exposed:
            assert f"`{family}`" in docs, f"docs/metrics.md lacks {family}"
