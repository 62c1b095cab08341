"""The ``inferwatch`` command's client commands, report and reference upload, against the fake
collector (conftest.py); ``inferwatch collector`` is tested with the collector."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from inferwatch.cli import main
from inferwatch.frame import CategoricalColumn

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


def test_report_shows_the_latest_windows_and_open_alerts(collector, capsys):
    collector.windows = [
        window(3, results=[result("psi", "age", "alert", "age drifted: PSI 0.31 > 0.2")]),
        window(1),
        window(2, latency={"p50_ms": 12.345}),
        window(0, results=[result("psi", "income", "alert", "old")]),
    ]
    collector.alerts = [
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

    code = main(["report", "--model", "credit", "--endpoint", collector.url, "--last", "3"])

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    # Windows of one length on one day: the title says so, and the table shows their starts.
    assert lines[0] == "Model credit: latest 3 windows of 1 h on 2026-11-26"
    header = next(i for i, line in enumerate(lines) if line.startswith("start"))
    table = lines[header + 2 : header + 5]
    assert [row.split()[:3] for row in table] == [
        ["11:00:00", "3", "1,000"],
        ["12:00:00", "3", "2,000"],
        ["13:00:00", "3", "3,000"],
    ]
    assert "3,000" in table[2] and "3.0%" in table[2] and table[2].endswith("psi(age)")
    assert "12.3" in table[1] and table[1].endswith("-")
    assert "psi(income)" not in out  # that window is older than the last 3
    assert "psi(age): age drifted: PSI 0.31 > 0.2" in out
    assert "Open alerts (1):" in out and "[warning] psi (version 3)" in out
    assert "gone" not in out
    assert [r.query for r in collector.of("windows")] == [{"last": "3"}]
    assert [r.query for r in collector.of("alerts")] == [{"state": "open"}]
    assert collector.of("models") == []  # windows were found: the model is known


def test_report_passes_the_version_and_handles_no_data(collector, capsys):
    argv = ["report", "--model", "credit", "--version", "3", "--endpoint", collector.url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "No windows yet." in out and "No open alerts." in out
    assert [r.query for r in collector.of("windows")] == [{"version": "3", "last": "10"}]
    assert [r.query for r in collector.of("alerts")] == [{"version": "3", "state": "open"}]


def test_report_of_a_version_the_model_lacks_exits_2(collector, capsys):
    argv = ["report", "--model", "credit", "--version", "7", "--endpoint", collector.url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "inferwatch: error: model 'credit' has no version '7' (it has versions '3')\n"


def test_report_keeps_only_the_versions_alerts_from_an_older_collector(collector, capsys):
    """A collector that ignores ?version= on alerts: the report filters them itself."""
    collector.windows = [window(1, version="2"), window(2)]
    collector.alerts = [
        {"check": "psi", "version": "2", "state": "open", "message": "of two"},
        {"check": "psi", "version": "3", "state": "open", "message": "of three"},
    ]
    argv = ["report", "--model", "credit", "--version", "2", "--endpoint", collector.url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "of two" in out and "of three" not in out


def test_report_says_what_the_collector_answered(collector, capsys):
    assert main(["report", "--model", "nope", "--endpoint", collector.url]) == 1
    err = capsys.readouterr().err
    assert "answered 404" in err and "no model named 'nope'" in err


def test_report_against_a_dead_port_is_a_clear_error(closed_port_url, capsys):
    assert main(["report", "--model", "m", "--endpoint", closed_port_url]) == 1
    assert "cannot reach the collector at http://127.0.0.1:" in capsys.readouterr().err


def test_report_refuses_more_windows_than_the_collector_lists(collector, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["report", "--model", "credit", "--last", "10001", "--endpoint", collector.url])
    assert exited.value.code == 2
    assert "from 1 to 10,000" in capsys.readouterr().err


FEATURES = [f"feature_{n:02d}" for n in range(30)]


def drifting(n: int, features: list[str], **fields: object) -> dict[str, object]:
    results = [result("univariate_drift", None, "alert", "30 features drifted")]
    results += [result("univariate_drift", f, "alert", f"{f} drifted") for f in features]
    results += [result("outliers", None, "warning", "12 outliers")]
    return window(n, results=results, **fields)


@pytest.mark.parametrize("columns", [100, 160])
def test_report_fits_the_terminal_abbreviating_the_findings(
    collector, capsys, monkeypatch, columns
):
    monkeypatch.setenv("COLUMNS", str(columns))
    collector.windows = [
        drifting(1, FEATURES, version="2024-05-01-release-candidate-7"),
        drifting(2, FEATURES[:2]),
        window(3, results=[result("univariate_drift", "age", "alert", "x " * 200)]),
    ]
    collector.alerts = [
        {"check": "univariate_drift", "version": "3", "state": "open", "message": "y " * 300}
    ]
    assert main(["report", "--model", "credit", "--endpoint", collector.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= columns
    at = next(i for i, line in enumerate(lines) if line.startswith("start"))
    table = lines[at : lines.index("", at)]
    assert len(table[1]) == max(len(line) for line in table)
    rows = table[2:]
    assert "2024-05-01.." in rows[0]  # a long version is cut to 12 characters
    if columns == 160:  # room for each check's first feature
        assert rows[0].endswith("  univariate_drift(feature_00, +29), outliers")
        assert rows[1].endswith("  univariate_drift(feature_00, feature_01), outliers")
    else:  # each check with its count of features, else its name alone
        assert rows[0].endswith("  univariate_drift, outliers")
        assert rows[1].endswith("  univariate_drift(2), outliers")
    assert rows[2].endswith("  univariate_drift(age)")
    # The full findings of the latest window and every alert are wrapped, not cut.
    text = " ".join(lines)
    assert text.count("x") == 200 and text.count("y") == 300


def test_report_json_is_the_apis_windows_and_open_alerts(collector, capsys):
    collector.windows = [window(2), window(1)]
    collector.alerts = [{"check": "psi", "version": "3", "state": "open", "message": "m"}]
    argv = ["report", "--model", "credit", "--json", "--last", "1", "--endpoint", collector.url]
    assert main(argv) == 0
    body = json.loads(capsys.readouterr().out)
    assert body == {
        "model": "credit",
        "version": None,
        "windows": [window(2)],
        "open_alerts": collector.alerts,
    }


def upload(collector, path: Path, *extra: str) -> int:
    argv = ["reference", "upload", "--model", "credit", "--version", "3", str(path)]
    return main([*argv, "--endpoint", collector.url, *extra])


def test_csv_upload_keeps_strings_as_categories_and_sends_labels(collector, tmp_path, capsys):
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

    code = upload(collector, path, "--label-column", "defaulted", "--chunk-rows", "2")

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert collector.committed and sorted(collector.parts) == [0, 1, 2]
    frames = [collector.parts[n] for n in range(3)]
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
    assert captured.out.endswith(", sent in 3 parts.\n")


def test_npy_upload_takes_label_and_prediction_columns_by_index(collector, tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(7, 4))
    np.save(tmp_path / "ref.npy", data)

    code = upload(
        collector,
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
    (frame,) = collector.parts.values()
    features = frame.features("feature")
    assert list(features) == ["a", "b"]
    np.testing.assert_array_equal(features["b"], data[:, 2])
    np.testing.assert_array_equal(frame.features("output")["prediction"], data[:, 0])
    np.testing.assert_array_equal(frame.features("label")["label"], data[:, 3])
    assert collector.starts == [{"task": "regression"}]


def test_npy_upload_without_columns_sends_the_whole_array(collector, tmp_path, capsys):
    data = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.save(tmp_path / "ref.npy", data)
    assert upload(collector, tmp_path / "ref.npy") == 0
    captured = capsys.readouterr()
    assert captured.out.endswith(", sent in 1 part.\n"), captured
    (frame,) = collector.parts.values()
    assert list(frame.features("feature")) == ["x[0]", "x[1]"]
    np.testing.assert_array_equal(frame.columns[0].values, data)


def test_parquet_upload_reads_numbers_strings_and_nulls(collector, tmp_path, capsys):
    table = pa.table(
        {
            "age": pa.array([31, None, 52], pa.int64()),
            "city": pa.array(["paris", None, "lyon"]).dictionary_encode(),
            "score": pa.array([0.1, 0.9, 0.4]),
        }
    )
    pq.write_table(table, tmp_path / "ref.parquet")

    code = upload(collector, tmp_path / "ref.parquet", "--prediction-column", "score")

    assert code == 0, capsys.readouterr().err
    (frame,) = collector.parts.values()
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
def test_upload_errors_are_clear(collector, tmp_path, capsys, name, content, extra, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    elif name.endswith(".npy"):
        np.save(path, np.zeros((3, 2)))
    assert upload(collector, path, *extra) == 1
    assert needle in capsys.readouterr().err
    assert collector.parts == {}


def test_console_script_lists_every_command():
    done = subprocess.run(
        [VENV_BIN / "inferwatch", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert all(command in done.stdout for command in ("collector", "report", "reference"))


def test_a_command_of_a_missing_distribution_says_how_to_install_it(tmp_path):
    # A Python where the collector's package cannot be imported, as when it is not installed.
    code = (
        "import sys; sys.modules['inferwatch.collector'] = None; "
        "from inferwatch.cli import main; sys.exit(main(['collector', '--port', '1']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'inferwatch[collector]'" in done.stderr
    assert "Traceback" not in done.stderr
