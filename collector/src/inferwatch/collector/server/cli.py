"""``inferwatch collector``: the collector's command, added to the SDK's ``inferwatch`` command
through the ``inferwatch.commands`` entry point."""

from __future__ import annotations

import argparse

from inferwatch.cli.common import fail

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add(commands: argparse._SubParsersAction) -> None:
    collector = commands.add_parser("collector", help="run the collector (OTLP receiver and API)")
    collector.add_argument("--config", help="a TOML configuration file")
    collector.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    collector.add_argument("--port", type=int, help="port to listen on (default 4318)")
    collector.add_argument("--db", help="sqlite:///path/to/file.db or postgresql://...")
    collector.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    collector.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from inferwatch.collector.runtime.loading import load_config
    from inferwatch.collector.server.app import create_app
    from inferwatch.collector.settings import ConfigError

    try:
        config = load_config(args.config, host=args.host, port=args.port, db=args.db)
        app = create_app(config)  # opens the database
    except ConfigError as exc:
        return fail(str(exc), 2)
    except OSError as exc:
        return fail(f"cannot open the collector's database: {exc}")
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level)
    return 0
