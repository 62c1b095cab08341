"""The four distributions: each wheel ships its own packages only, and ``pip install inferwatch``
is the SDK alone, its extras naming the others."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = {"sdk": "inferwatch", "middleware": "inferwatch_middleware"}
DISTRIBUTIONS["collector"] = "inferwatch_collector"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    # Built from copies: setuptools leaves build/ behind in the folder it builds.
    sources = tmp_path_factory.mktemp("sources")
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests")
    folders = [str(shutil.copytree(ROOT / f, sources / f, ignore=ignore)) for f in DISTRIBUTIONS]
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *folders]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return {folder: next(out.glob(f"{name}-*.whl")) for folder, name in DISTRIBUTIONS.items()}


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [n for n in archive.namelist() if ".dist-info/" not in n]


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_each_wheel_ships_only_its_own_packages(wheels: dict[str, Path]) -> None:
    sdk = _files(wheels["sdk"])
    assert "inferwatch/__init__.py" in sdk and "inferwatch/py.typed" in sdk
    assert not [f for f in sdk if f.startswith(("inferwatch/collector", "inferwatch/middleware"))]
    for folder, package in (("middleware", "middleware"), ("collector", "collector")):
        files = _files(wheels[folder])
        assert files and all(f.startswith(f"inferwatch/{package}/") for f in files), files
        assert f"inferwatch/{package}/py.typed" in files
        # Every module of the source tree is in the wheel.
        source = ROOT / folder / "src"
        modules = {str(p.relative_to(source)) for p in source.rglob("*.py")}
        assert modules <= set(files), modules - set(files)
    collector = _files(wheels["collector"])
    assert "inferwatch/collector/dashboard/static/index.html" in collector
    # The SQLite schema's migrations are package data too.
    source = ROOT / "collector" / "src"
    migrations = {str(p.relative_to(source)) for p in source.rglob("*.sql")}
    assert migrations and migrations <= set(collector), migrations - set(collector)


def test_the_sdk_needs_only_its_light_dependencies(wheels: dict[str, Path]) -> None:
    metadata = _metadata(wheels["sdk"])
    requires = metadata.get_all("Requires-Dist") or []
    base = {r.split(">")[0].split("=")[0].split("<")[0] for r in requires if "extra ==" not in r}
    assert base == {
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-proto",
        "httpx",
        "numpy",
    }
    extras = [r for r in requires if "extra ==" in r]
    assert any(r.startswith("inferwatch-collector==0.1.0") and "collector" in r for r in extras)
    assert any(r.startswith("inferwatch-middleware[bentoml]==0.1.0") for r in extras)


@pytest.mark.slow
def test_pip_install_inferwatch_is_the_sdk_alone(wheels: dict[str, Path], tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", str(wheels["sdk"])],
        check=True,
        capture_output=True,
        timeout=600,
    )
    probe = (
        "import importlib.util, inferwatch; "
        "print(importlib.util.find_spec('inferwatch.collector') is None, "
        "importlib.util.find_spec('scipy') is None)"
    )
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "True"], done.stderr
    command = subprocess.run(
        [env / "bin" / "inferwatch", "collector"], capture_output=True, text=True, timeout=60
    )
    assert command.returncode == 1
    assert "pip install 'inferwatch[collector]'" in command.stderr
