"""A database written by an earlier release, served by a collector of this one: the API answers
what that release answered (result rows now with their severity), the journal the release left
is replayed, and the collector goes on: it drops a span it stored before, joins waiting labels
to new spans and new labels to old predictions, evaluates, and commits the upload left open."""

from __future__ import annotations

import copy
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch.collector import load_config
from inferwatch.collector.alerts import AlertPolicy
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import start_collector

from .fixtures.make_fixture import T0, WINDOW, Span, classification_frames, otlp_request
from .helpers import migrated

FIXTURES = Path(__file__).parent / "fixtures"
# The severities a new result of each decision may have.
CONSISTENT = {
    "ok": {None},
    "warning": {"warning"},
    "alert": {"warning", "critical"},
    "not_enough_data": {None},
    "error": {None},
}


def contains(expected: Any, actual: Any, where: str = "") -> None:
    """``actual`` has everything ``expected`` has (it may have more keys)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} is missing"
            contains(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            contains(left, right, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def with_new_defaults(recorded: dict[str, Any], toml: str, model: str) -> dict[str, Any]:
    """A model's recorded config with the defaults changed since (alerts open after two failing
    windows, not one) where its TOML left them unset: those it serves now."""
    expected = copy.deepcopy(recorded)
    alerts = tomllib.loads(toml).get("models", {}).get(model, {}).get("alerts", {})
    if "consecutive" not in alerts:
        expected["alerts"]["consecutive"] = AlertPolicy().consecutive
    return expected


def send(client: httpx.Client, spans: list[Span]) -> None:
    response = client.post(
        "/v1/traces",
        content=otlp_request(spans),
        headers={"content-type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text


def get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def label(client: httpx.Client, model: str, ids: list[str]) -> dict[str, int]:
    labels = [{"prediction_id": pid, "label": "yes"} for pid in ids]
    response = client.post("/v1/labels", json={"model": model, "labels": labels})
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


@pytest.mark.parametrize("name", ["schema2", "schema3", "schema4", "schema4-severity"])
def test_an_earlier_release_database_is_served_as_before(tmp_path: Path, name: str) -> None:
    made = json.loads((FIXTURES / f"{name}.json").read_text())
    manifest, answers = made["manifest"], made["answers"]
    db = tmp_path / "collector.db"
    shutil.copy(FIXTURES / f"{name}.db", db)
    (tmp_path / "collector.toml").write_text(manifest["config"])
    config = load_config(tmp_path / "collector.toml", db=f"sqlite:///{db}")
    clock = FakeClock(manifest["end"])
    collector = start_collector(config, clock)
    try:
        with collector.client() as client:
            contains(answers["models"], get(client, "/v1/models"), "models")
            for model in ("credit", "churn", "quiet"):
                recorded = answers[model]
                windows = get(client, f"/v1/models/{model}/windows")["windows"]
                contains(recorded["windows"], windows, f"{model} windows")
                for window in recorded["windows"]:
                    detail = get(client, f"/v1/models/{model}/windows/{window['id']}")
                    (before,) = [d for d in recorded["details"] if d["id"] == window["id"]]
                    contains(before, detail, f"{model} window {window['id']}")
                    severities = [migrated(row)["severity"] for row in before["results"]]
                    assert [row["severity"] for row in detail["results"]] == severities
                for path in ("alerts", "metrics"):
                    contains(recorded[path], get(client, f"/v1/models/{model}/{path}"), path)
                config = with_new_defaults(recorded["config"], manifest["config"], model)
                contains(config, get(client, f"/v1/models/{model}/config"), "config")
            reference = get(client, "/v1/models/credit/versions/1/reference")
            contains(answers["reference"], reference, "reference")

            # The open window: its checkpointed state and the journal after it, replayed.
            (open_window,) = [w for w in answers["credit"]["windows"] if not w["closed"]]
            path = f"/v1/models/credit/windows/{open_window['id']}"
            summary = get(client, path)["summary"]
            assert summary["requests"] == open_window["requests"] == 6
            assert summary["rows"] == open_window["rows"]
            alerts = get(client, "/v1/models/credit/alerts")["alerts"]
            assert [a["state"] for a in alerts] == ["resolved", "open"]
            assert [e["result"]["severity"] for e in alerts[1]["evidence"]] == ["warning"]

            def windows_of(model: str) -> dict[int, dict[str, Any]]:
                found = get(client, f"/v1/models/{model}/windows")["windows"]
                return {window["id"]: window for window in found}

            # A span stored before is a duplicate still.
            rng = np.random.default_rng(len(name))
            inputs, outputs = classification_frames(rng, 3)
            again = Span(
                manifest["stored_serial"],
                "credit",
                "1",
                T0 + 2 * WINDOW,
                ["d0"] * 3,
                inputs,
                outputs,
            )
            requests = {wid: w["requests"] for wid, w in windows_of("credit").items()}
            send(client, [again])
            assert {wid: w["requests"] for wid, w in windows_of("credit").items()} == requests

            # Labels that waited join the predictions that come now, in the open window.
            early = manifest["early_ids"]
            inputs, outputs = classification_frames(rng, len(early))
            serial = manifest["last_serial"] + 1
            send(
                client, [Span(serial, "credit", "1", T0 + 3 * WINDOW + 30, early, inputs, outputs)]
            )
            assert get(client, path)["labelled"] == open_window["labelled"] + len(early)
            counters = get(client, "/v1/models/credit/metrics")["labels"]
            waited = answers["credit"]["metrics"]["labels"]["pending"]
            assert counters["pending"] == waited - len(early)

            # New labels join old predictions (UUIDs and text ids), and their windows are
            # evaluated again; the open window closes and is evaluated.
            before = {model: windows_of(model) for model in manifest["unlabelled"]}
            for model, ids in manifest["unlabelled"].items():
                assert label(client, model, ids)["joined"] == len(ids)
            relabelled = {
                model: [
                    wid
                    for wid, w in windows_of(model).items()
                    if w["labelled"] > old[wid]["labelled"]
                ]
                for model, old in before.items()
            }
            assert [len(ids) for ids in relabelled.values()] == [1, 1]
            clock.advance_to(T0 + 4 * WINDOW + 11)

            def evaluated_again() -> bool:
                for model, ids in relabelled.items():
                    now = windows_of(model)
                    if any(
                        now[wid]["evaluated_at"] == before[model][wid]["evaluated_at"]
                        for wid in ids
                    ):
                        return False
                return bool(get(client, path)["evaluated_at"])

            wait_for(evaluated_again, what="the labelled and the open windows evaluated")
            closed = get(client, path)
            assert closed["closed"] and closed["requests"] == 7
            assert closed["results"]
            for row in closed["results"]:
                assert row["severity"] in CONSISTENT[row["decision"]], row

            # The upload left open takes its commit.
            upload = manifest["open_upload"]
            response = client.post(
                f"/v1/models/credit/versions/2/reference/uploads/{upload}/commit"
            )
            assert response.status_code == 200, response.text
            assert response.json()["rows"] == 120
    finally:
        collector.stop()
