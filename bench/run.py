"""Run every benchmark (bench/bench_*.py) and gather their tables into bench/README.md.

Usage: python bench/run.py [name ...]   (names like "sdk" or "receive"; default all)
       python bench/run.py --collect       (only rewrite bench/README.md from bench/results)
Each benchmark writes its own table to bench/results/<name>.md; this script only orders them
under a header that records the machine and the date, each followed by its hand-written notes
from bench/notes/<name>.md if there are any.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "sdk",
    "receive",
    "summaries",
    "collector",
    "postgres",
    "metrics",
    "labels",
    "detectors",
    "false_alarms",
    "false_alarm_rules",
    "wide",
    "alibi",
    "shift",
    "estimation",
    "cbpe_cost",
    "faults",
    "middleware",
]


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def section(name: str) -> str:
    """A benchmark's latest results, then its notes (bench/notes/<name>.md, written by hand:
    what the numbers mean, earlier runs, before/after comparisons), which a rerun keeps."""
    parts = [(HERE / "results" / f"{name}.md").read_text().strip()]
    notes = HERE / "notes" / f"{name}.md"
    if notes.exists():
        parts.append(notes.read_text().strip())
    return "\n\n".join(parts)


def main(names: list[str]) -> int:
    scripts = {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}
    collect_only = names == ["--collect"]
    chosen = (
        []
        if collect_only
        else names or sorted(scripts, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n))
    )
    failed = []
    for name in chosen:
        if name not in scripts:
            print(f"no benchmark named {name!r}; have {sorted(scripts)}", file=sys.stderr)
            return 2
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(scripts[name])], cwd=HERE.parent).returncode:
            failed.append(name)
    sections = [
        section(n)
        for n in sorted(scripts, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n))
        if (HERE / "results" / f"{n}.md").exists()
    ]
    header = (
        "# Benchmarks\n\n"
        "`make bench` runs every `bench/bench_*.py` and rewrites this file. Each section names its "
        "baseline, measured in the same run; machines here are noisy (2 cores), so read medians "
        "and ratios, not absolute times.\n\n"
        f"Assembled {datetime.date.today().isoformat()} on {machine()}, from the latest run "
        "of each benchmark (sections that record their own date and load give them).\n"
    )
    (HERE / "README.md").write_text(header + "\n" + "\n\n".join(sections) + "\n")
    if failed:
        print(f"benchmarks that failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
