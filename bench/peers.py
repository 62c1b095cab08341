"""The peers inferwatch is measured against, each in a bench-only virtual environment.

A peer is never a dependency of the project: ``peer_python("nannyml", ["nannyml==0.13.1"])``
makes (once) ``bench/.venvs/nannyml`` with those requirements and returns its interpreter, or
``None`` with the reason printed when the registry or the build fails, so a benchmark can say what
limited its comparison instead of stopping. ``run_peer`` runs a script in that interpreter with
every peer's telemetry switched off and reads the one JSON document it prints. ``REQUIREMENTS``
pins each peer once, so that the benchmarks sharing a peer share its venv.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

VENVS = Path(__file__).resolve().parent / ".venvs"

# Each peer's do-not-track switch: whylogs posts usage statistics at import unless told not to.
TELEMETRY_OFF = {
    "WHYLOGS_NO_ANALYTICS": "True",
    "BENTOML_DO_NOT_TRACK": "True",
    "NML_DISABLE_USAGE_LOGGING": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
    "PHOENIX_TELEMETRY_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "SCARF_ANALYTICS": "false",
}

# What timing on one core means for a peer: its BLAS and OpenMP pools held to one thread.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}

# Each peer's pinned install, by venv name.
REQUIREMENTS = {
    # nannyml imports statsmodels without requiring it.
    "nannyml": ["nannyml==0.13.1", "statsmodels"],
    # alibi-detect's base install (TabularDrift is scipy only: no torch, no tensorflow) ...
    "alibi-detect": ["alibi-detect==0.13.0"],
    # ... and with the CPU build of torch, which its MMDDrift and new-API detectors need.
    "alibi": ["alibi-detect==0.13.0", "torch==2.13.0"],
    # evidently 0.7.23 imports a pandas helper that pandas 3 removed.
    "evidently": ["evidently==0.7.23", "pandas==2.3.3"],
}


def peer_env() -> dict[str, str]:
    """The environment a peer runs in: this one, with every telemetry switch off."""
    return {**os.environ, **TELEMETRY_OFF}


def peer_python(name: str, requirements: list[str]) -> Path | None:
    """The interpreter of the venv ``name`` holding ``requirements``, made if missing or stale."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"making the bench-only venv {venv} ({', '.join(requirements)})", flush=True)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=False)
    if made.returncode:
        print(f"could not make {venv}", file=sys.stderr)
        return None
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*install, *requirements], env=peer_env(), check=False)
    if done.returncode:
        print(f"could not install {requirements} into {venv}", file=sys.stderr)
        return None
    stamp.write_text(wanted)
    return python


def run_peer(
    python: Path, script: Path, *args: str, timeout: float = 3600, one_thread: bool = False
) -> Any:
    """Runs ``script`` under the peer's ``python`` and returns the JSON it prints last;
    ``one_thread`` holds its thread pools to one thread (``ONE_THREAD``)."""
    done = subprocess.run(
        [str(python), str(script), *args],
        env={**peer_env(), **(ONE_THREAD if one_thread else {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{script.name} failed under {python}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
