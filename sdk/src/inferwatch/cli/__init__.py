"""The ``inferwatch`` command.

    inferwatch report --model M [--version V] [--last N] [--endpoint URL]
    inferwatch reference upload --model M --version V FILE [--label-column C] ...
    inferwatch collector ...            (with the collector installed)

The SDK's own commands (``report``, ``reference``) need only the SDK's dependencies. Other
distributions add commands through the ``inferwatch.commands`` entry point group: each entry
names a function ``add(commands)`` that adds its subparser to ``commands`` (an argparse
subparsers action) and sets ``command`` to the function that runs it. The collector adds
``collector`` this way; without it installed, ``inferwatch collector`` says how to install it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from inferwatch.cli import reference, report
from inferwatch.cli.common import fail

COMMANDS_GROUP = "inferwatch.commands"
# Commands that other distributions provide, and how to get them when they are missing.
MISSING_HINTS = {"collector": "pip install 'inferwatch[collector]'"}

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Command = args.command
    return command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch",
        description="Show a model's report, upload reference data, run the inferwatch collector.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    report.add(commands)
    reference.add(commands)
    added = {"report", "reference"}
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            add = entry.load()
        except ImportError as exc:
            _missing(commands, entry.name, f"it cannot be imported ({exc})")
        else:
            add(commands)
        added.add(entry.name)
    for name in sorted(set(MISSING_HINTS) - added):
        _missing(commands, name, "it is not installed")
    return parser


def _missing(commands: argparse._SubParsersAction, name: str, why: str) -> None:
    """A stand-in for a command whose distribution is absent or broken: it says how to fix it."""
    hint = MISSING_HINTS.get(name, "reinstall the distribution that provides it")
    message = f"the {name!r} command is not available: {why}; {hint}"
    # No prefix characters: whatever options follow are the missing command's, taken as they are.
    stand_in = commands.add_parser(
        name, help=f"(not installed: {hint})", add_help=False, prefix_chars="\0"
    )
    stand_in.add_argument("arguments", nargs="*")
    stand_in.set_defaults(command=lambda args: fail(message))


if __name__ == "__main__":
    sys.exit(main())
