"""The distribution ships every module: setuptools only packages folders listed in pyproject."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed() -> None:
    config = _config()
    listed = set(config["packages"])
    for package, folder in config["package-dir"].items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(ROOT / folder)
            name = ".".join([package, *relative.parts])
            assert name in listed, f"{name} ({init.parent}) is missing from pyproject packages"


def test_listed_packages_exist() -> None:
    config = _config()
    for name in config["packages"]:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in config["package-dir"]:
                folder = ROOT / config["package-dir"][prefix] / Path(*parts[cut:])
                break
        assert (folder / "__init__.py").exists(), f"{name} is listed but {folder} has no package"


def test_sdk_is_typed() -> None:
    assert (ROOT / "sdk" / "py.typed").exists()
