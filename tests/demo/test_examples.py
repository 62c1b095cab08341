"""Each example runs with the one command examples/README.md gives, against a real collector."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_processes import Servers, bentoml_argv, bentoml_env, pick_port
from demo_support import EXAMPLES, RunningCollector, run_example
from wine import FEATURES, train, training_data

from inferwatch_testkit import wait_for

pytestmark = pytest.mark.slow


def reference_of(client: httpx.Client, model: str, version: str) -> dict[str, Any]:
    response = client.get(f"/v1/models/{model}/versions/{version}/reference")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_reference_upload_from_python_and_from_the_cli(
    collector: RunningCollector, tmp_path: Path
) -> None:
    out = run_example("upload_reference.py", "--endpoint", collector.url)
    assert "178 rows, 13 features" in out.stdout
    with collector.client() as client:
        from_python = reference_of(client, "wine", "1")

    table = tmp_path / "wine_reference.csv"
    run_example("upload_reference.py", "--csv", str(table))
    with table.open() as f:
        header = next(csv.reader(f))
    assert header == [*FEATURES, "label", "prediction"]
    cli = subprocess.run(
        [sys.executable, "-m", "inferwatch", "reference", "upload",
         "--model", "wine-cli", "--version", "1", str(table), "--label-column", "label",
         "--prediction-column", "prediction", "--task", "classification",
         "--endpoint", collector.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "178 rows, 13 features" in cli.stdout
    with collector.client() as client:
        from_cli = reference_of(client, "wine-cli", "1")
    # The same table either way: same row count and the same feature set.
    assert from_cli.get("rows") == from_python.get("rows") == 178
    assert set(from_cli["features"]) == set(from_python["features"]) == set(FEATURES)


def test_monitored_function_then_a_label_job_in_another_process(
    collector: RunningCollector, tmp_path: Path
) -> None:
    labels_csv = tmp_path / "labels.csv"
    out = run_example(
        "monitor_function.py",
        "--endpoint", collector.url, "--calls", "8", "--rows", "5",
        "--labels-out", str(labels_csv),
        env={"INFERWATCH_SERVICE_NAME": "examples-test"},
    )  # fmt: skip
    assert "8 monitored calls, 40 rows" in out.stdout
    with labels_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and len({r["prediction_id"] for r in rows}) == 40

    out = run_example("post_labels.py", str(labels_csv), "--endpoint", collector.url)
    # The function's spans were acknowledged before it exited, so every label finds its row.
    assert "sent 40 labels in 1 request(s): 40 joined" in out.stdout
    out = run_example("post_labels.py", str(labels_csv), "--endpoint", collector.url)
    assert "40 replaced" in out.stdout


def test_bentoml_service_answers_with_prediction_ids_the_collector_joins(
    collector: RunningCollector, tmp_path: Path
) -> None:
    servers = Servers()
    port = pick_port(None)
    service = servers.start(
        "the BentoML service",
        f"http://127.0.0.1:{port}",
        bentoml_argv("wine_service:WineClassifier", "127.0.0.1", port),
        tmp_path / "bentoml.log",
        env=bentoml_env(tmp_path / "bentoml-home", collector.url),
    )
    try:
        service.wait_ready("/readyz", 90.0)
        features, labels = training_data()
        rows = features[[0, 70, 140]]
        response = httpx.post(
            service.url + "/classify", json={"input_data": rows.tolist()}, timeout=30
        )
        assert response.status_code == 200, response.text
        model = train()
        assert response.json() == {
            "prediction": model.predict(rows).tolist(),
            "proba": model.predict_proba(rows).tolist(),
        }
        ids = response.headers["x-prediction-ids"].split(",")
        assert len(ids) == 3
        truth = dict(zip(ids, labels[[0, 70, 140]].tolist(), strict=True))

        def joined() -> bool:
            body = httpx.post(
                collector.url + "/v1/labels",
                json={"model": "wine", "labels": [
                    {"prediction_id": i, "label": y} for i, y in truth.items()
                ]},
                timeout=10,
            ).json()  # fmt: skip
            return body["joined"] == 3

        # The middleware exports within about a second; relabelling is harmless (last wins).
        wait_for(joined, what="the service's predictions to reach the collector")
    finally:
        servers.stop_all()


def test_digits_noise_is_found_in_the_noisy_windows_only(collector: RunningCollector) -> None:
    out = run_example("digits_drift.py", "--endpoint", collector.url, "--window", "3")
    lines = [line for line in out.stdout.splitlines() if line.startswith("window ")]
    assert len(lines) == 4, out.stdout
    with collector.client() as client:
        windows = sorted(
            client.get("/v1/models/digits/windows").json()["windows"], key=lambda w: w["start"]
        )
        details = [client.get(f"/v1/models/digits/windows/{w['id']}").json() for w in windows]
    assert [w["rows"] for w in details] == [300, 300, 300, 300]
    joint = [
        {r["detector"] for r in w["results"] if r["feature"] is None and r["decision"] == "alert"}
        for w in details
    ]
    assert joint[0] == joint[1] == set(), joint
    assert joint[2] and joint[3], joint


def test_examples_readme_lists_a_command_for_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for script in (
        "wine_service.py",
        "monitor_function.py",
        "post_labels.py",
        "upload_reference.py",
        "digits_drift.py",
        "demo.py",
    ):
        assert script.removesuffix(".py") in readme, script
    assert "inferwatch reference upload" in readme
