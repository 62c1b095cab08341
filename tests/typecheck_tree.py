"""Lay out a tree of links shaped like the installed package, for mypy.

setuptools maps sdk/ to ``inferwatch``, middleware/ to ``inferwatch.middleware`` and collector/ to
``inferwatch.collector``; mypy only understands folders named like their packages.
"""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {"": "sdk", "middleware": "middleware", "collector": "collector"}


def main(target: Path) -> None:
    package = target / "inferwatch"
    shutil.rmtree(target, ignore_errors=True)
    package.mkdir(parents=True)
    for entry in (ROOT / "sdk").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in MAPPING.items():
        if name:
            (package / name).symlink_to(ROOT / folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
