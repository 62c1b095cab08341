"""Makes tests/testkit.py importable from every test area."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
