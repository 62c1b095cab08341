"""The ``inferwatch`` command line: report, reference upload and collector."""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inferwatch.collector.cli import main
from inferwatch.frame import CategoricalColumn
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

VENV_BIN = Path(sys.executable).parent


def window(n: int, **fields: object) -> dict[str, object]:
    hour = 10 + n
    return {
        "id": n,
        "model": "credit",
        "version": "3",
        "start": f"2026-11-26T{hour:02d}:00:00+00:00",
        "end": f"2026-11-26T{hour + 1:02d}:00:00+00:00",
        "rows": 1000 * n,
        "labelled": 10 * n,
        "requests": 100,
        "error_rate": n / 100,
        "results": [],
        **fields,
    }


def result(detector: str, feature: str | None, decision: str, message: str) -> dict[str, object]:
    return {
        "detector": detector,
        "feature": feature,
        "score": 0.3,
        "p_value": None,
        "threshold": 0.2,
        "decision": decision,
        "message": message,
    }


def test_report_shows_the_latest_windows_and_open_alerts(fake_collector, capsys):
    fake_collector.windows = [
        window(3, results=[result("psi", "age", "alert", "age drifted: PSI 0.31 > 0.2")]),
        window(1),
        window(2, latency={"p50_ms": 12.345}),
        window(0, results=[result("psi", "income", "alert", "old")]),
    ]
    fake_collector.alerts = [
        {
            "id": 1,
            "model": "credit",
            "version": "3",
            "check": "psi",
            "severity": "warning",
            "state": "open",
            "opened_at": "2026-11-26T13:00:00+00:00",
            "message": "age drifted",
        },
        {"id": 2, "check": "error_rate", "state": "resolved", "message": "gone"},
    ]

    code = main(["report", "--model", "credit", "--endpoint", fake_collector.url, "--last", "3"])

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("start"))
    table = lines[header + 2 : header + 5]
    assert [row.split()[:3] for row in table] == [
        ["2026-11-26", "11:00:00", "12:00:00"],
        ["2026-11-26", "12:00:00", "13:00:00"],
        ["2026-11-26", "13:00:00", "14:00:00"],
    ]
    assert "3,000" in table[2] and "3.0%" in table[2] and table[2].endswith("psi(age)")
    assert "12.3" in table[1] and table[1].endswith("-")
    assert "psi(income)" not in out  # that window is older than the last 3
    assert "psi(age): age drifted: PSI 0.31 > 0.2" in out
    assert "Open alerts (1):" in out and "[warning] psi (version 3)" in out
    assert "gone" not in out


def test_report_passes_the_version_and_handles_no_data(fake_collector, capsys):
    argv = ["report", "--model", "credit", "--version", "7", "--endpoint", fake_collector.url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "No windows yet." in out and "No open alerts." in out
    assert ("GET", "/v1/models/credit/windows", {"version": "7"}) in fake_collector.requests


def test_report_says_what_the_collector_answered(fake_collector, capsys):
    assert main(["report", "--model", "nope", "--endpoint", fake_collector.url]) == 1
    err = capsys.readouterr().err
    assert "answered 404" in err and "no model named 'nope'" in err


def test_report_against_a_dead_port_is_a_clear_error(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["report", "--model", "m", "--endpoint", f"http://127.0.0.1:{port}"]) == 1
    assert "cannot reach the collector at http://127.0.0.1:" in capsys.readouterr().err


def upload(fake_collector, path: Path, *extra: str) -> int:
    argv = ["reference", "upload", "--model", "credit", "--version", "3", str(path)]
    return main([*argv, "--endpoint", fake_collector.url, *extra])


def test_csv_upload_keeps_strings_as_categories_and_sends_labels(fake_collector, tmp_path, capsys):
    path = tmp_path / "ref.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["age", "city", "income", "defaulted"])
        writer.writerows(
            [
                [31, "paris", 1200.5, "yes"],
                [45, "", 900, "no"],
                [52, "lyon", "NA", "no"],
                [23, "paris", 3000, "yes"],
                [38, "nice", 1500, "no"],
            ]
        )

    code = upload(fake_collector, path, "--label-column", "defaulted", "--chunk-rows", "2")

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert fake_collector.committed and sorted(fake_collector.parts) == [0, 1, 2]
    frames = [fake_collector.parts[n] for n in range(3)]
    ages = np.concatenate([f.features("feature")["age"] for f in frames])
    np.testing.assert_array_equal(ages, [31, 45, 52, 23, 38])
    incomes = np.concatenate([f.features("feature")["income"] for f in frames])
    np.testing.assert_array_equal(incomes, [1200.5, 900, np.nan, 3000, 1500])
    cities = [v for f in frames for v in f.features("feature")["city"].values()]
    assert cities == ["paris", None, "lyon", "paris", "nice"]
    labels = [v for f in frames for v in f.features("label")["label"].values()]
    assert labels == ["yes", "no", "no", "yes", "no"]
    assert "defaulted" not in frames[0].features("feature")
    assert "\r" in captured.err and "5/5 rows 100%" in captured.err
    # Numeric features first, then categorical ones, as @monitor orders a live call's columns.
    assert "5 rows, 3 features (age, income, city)" in captured.out


def test_npy_upload_takes_label_and_prediction_columns_by_index(fake_collector, tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(7, 4))
    np.save(tmp_path / "ref.npy", data)

    code = upload(
        fake_collector,
        tmp_path / "ref.npy",
        "--label-column",
        "3",
        "--prediction-column",
        "0",
        "--feature-names",
        "a,b",
        "--task",
        "regression",
    )

    assert code == 0, capsys.readouterr().err
    (frame,) = fake_collector.parts.values()
    features = frame.features("feature")
    assert list(features) == ["a", "b"]
    np.testing.assert_array_equal(features["b"], data[:, 2])
    np.testing.assert_array_equal(frame.features("output")["prediction"], data[:, 0])
    np.testing.assert_array_equal(frame.features("label")["label"], data[:, 3])
    assert fake_collector.starts == [{"task": "regression"}]


def test_npy_upload_without_columns_sends_the_whole_array(fake_collector, tmp_path, capsys):
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.save(tmp_path / "ref.npy", data)
    assert upload(fake_collector, tmp_path / "ref.npy") == 0, capsys.readouterr().err
    (frame,) = fake_collector.parts.values()
    assert list(frame.features("feature")) == ["x[0]", "x[1]"]
    np.testing.assert_array_equal(frame.columns[0].values, data)


def test_parquet_upload_reads_numbers_strings_and_nulls(fake_collector, tmp_path, capsys):
    table = pa.table(
        {
            "age": pa.array([31, None, 52], pa.int64()),
            "city": pa.array(["paris", None, "lyon"]).dictionary_encode(),
            "score": pa.array([0.1, 0.9, 0.4]),
        }
    )
    pq.write_table(table, tmp_path / "ref.parquet")

    code = upload(fake_collector, tmp_path / "ref.parquet", "--prediction-column", "score")

    assert code == 0, capsys.readouterr().err
    (frame,) = fake_collector.parts.values()
    features = frame.features("feature")
    np.testing.assert_array_equal(features["age"], [31, np.nan, 52])
    city = features["city"]
    assert isinstance(city, CategoricalColumn) and city.values() == ["paris", None, "lyon"]
    np.testing.assert_array_equal(frame.features("output")["prediction"], [0.1, 0.9, 0.4])


@pytest.mark.parametrize(
    ("name", "content", "extra", "needle"),
    [
        ("missing.csv", None, [], "does not exist"),
        ("ref.xlsx", b"x", [], "unknown extension; expected one of .csv, .parquet, .npy"),
        ("ref.csv", b"a,b\n1,2\n", ["--label-column", "y"], "the label column 'y' is not in"),
        ("ref.csv", b"a,b\n1,2\n3\n", [], "line 3 has 1 fields; the header has 2"),
        ("ref.npy", None, ["--label-column", "5"], "0-based column index below 2"),
        ("ref.parquet", b"not parquet", [], "is not a readable Parquet file"),
    ],
)
def test_upload_errors_are_clear(fake_collector, tmp_path, capsys, name, content, extra, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif name.endswith(".npy"):
        np.save(path, np.zeros((3, 2)))
    assert upload(fake_collector, path, *extra) == 1
    assert needle in capsys.readouterr().err
    assert fake_collector.parts == {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def test_collector_command_serves_otlp_and_the_api(tmp_path, make, capsys):
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
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=10)
        spans = make.sdk_spans([make.inferwatch_attributes(model="credit")])
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        models = httpx.get(f"{url}/v1/models", timeout=5).json()["models"]
        assert [m["model"] for m in models] == ["credit"]
        assert main(["report", "--model", "credit", "--endpoint", url]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0] == "Model credit: latest 1 windows"
        assert table[4].split()[3:6] == ["3", "4", "0"]  # version, rows, labelled
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    assert process.returncode == 0
    assert (tmp_path / "collector.db").exists() and not (tmp_path / "wrong.db").exists()


def test_collector_command_rejects_a_bad_database_url(capsys):
    assert main(["collector", "--db", "mysql://nope"]) == 2
    assert "db must be a sqlite:/// or postgresql:// URL" in capsys.readouterr().err


def test_collector_command_without_its_extras_names_the_install(tmp_path):
    # A Python that cannot import uvicorn, as without the [collector] extra.
    code = (
        "import sys; sys.modules['uvicorn'] = None; "
        "from inferwatch.collector.cli import main; sys.exit(main(['collector']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'inferwatch[collector]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_console_script_is_installed():
    command = [VENV_BIN / "inferwatch", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert all(command in done.stdout for command in ("collector", "report", "reference"))
