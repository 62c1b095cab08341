"""``inferwatch collector``: the collector's command, added to the SDK's ``inferwatch`` command
through the ``inferwatch.commands`` entry point; ``inferwatch collector hash-key`` prints the
hash a key is configured as (docs/security.md)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys

from inferwatch.cli.common import fail

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# The collector has no API keys and is asked to listen beyond loopback.
EXIT_UNPROTECTED = 4
# The host and port cannot be listened on (the port is in use, say).
EXIT_CANNOT_LISTEN = 5


def add(commands: argparse._SubParsersAction) -> None:
    collector = commands.add_parser("collector", help="run the collector (OTLP receiver and API)")
    collector.add_argument("--config", help="a TOML configuration file")
    collector.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    collector.add_argument("--port", type=int, help="port to listen on (default 4318)")
    collector.add_argument("--db", help="sqlite:///path/to/file.db or postgresql://...")
    collector.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    collector.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="listen beyond loopback without API keys: anyone who reaches the port may write "
        "and read every model and change settings",
    )
    collector.set_defaults(command=run)
    actions = collector.add_subparsers(metavar="{hash-key}")
    hash_key = actions.add_parser(
        "hash-key", help="print the hash of a key read from stdin, for [[collector.keys]] hash"
    )
    hash_key.set_defaults(command=print_hash)


def print_hash(args: argparse.Namespace) -> int:
    from inferwatch.collector.settings import hash_key

    # A bearer token has no surrounding spaces: the collector strips them from what it is sent.
    key = sys.stdin.readline().strip()
    if not key:
        return fail("no key on stdin: pipe it in (inferwatch collector hash-key < key.txt)", 2)
    print(hash_key(key))
    return 0


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from inferwatch.collector.runtime.loading import load_config
    from inferwatch.collector.server.app import create_app
    from inferwatch.collector.settings import ConfigError

    try:
        config = load_config(
            args.config,
            host=args.host,
            port=args.port,
            db=args.db,
            insecure_no_auth=args.insecure_no_auth,
        )
    except ConfigError as exc:
        return fail(str(exc), 2)
    loopback = is_loopback(config.host)
    if not config.access_keys and not loopback and not config.insecure_no_auth:
        return fail(
            f"the collector has no API keys and would listen on {config.host}, beyond "
            "loopback: configure [[collector.keys]] or api_keys (docs/security.md), "
            "listen on 127.0.0.1, or pass --insecure-no-auth to allow anyone who "
            "reaches the port",
            EXIT_UNPROTECTED,
        )
    # Before the database is opened: a collector that cannot listen leaves no file behind.
    refused = cannot_listen(config.host, config.port)
    if refused is not None:
        return fail(refused, EXIT_CANNOT_LISTEN)
    try:
        app = create_app(config)  # opens the database
    except ConfigError as exc:
        return fail(str(exc), 2)
    except OSError as exc:
        return fail(f"cannot open the collector's database: {exc}")
    # Said once the collector is about to listen, so that no error above follows a "listening".
    if not config.access_keys and loopback:
        message = f"no authentication (loopback only): listening on {config.host}"
        _say(args.log_level, "info", message)
    elif not config.access_keys:
        _say(
            args.log_level,
            "warning",
            f"no authentication on {config.host} (--insecure-no-auth): anyone who reaches "
            f"port {config.port} may read and write every model and change its settings",
        )
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level)
    return 0


def cannot_listen(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on ``host``:``port``, None when it can.

    Binds (and closes) a socket on every address the host names, as asyncio's create_server
    then does, with the same options: SO_REUSEADDR (a port some closed connection still holds
    in TIME_WAIT is free; one another socket listens on is not) and IPV6_V6ONLY.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:
        return f"cannot listen on {where}: the host does not resolve ({exc})"
    for family, kind, proto, _, address in dict.fromkeys(found):
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {where}: the port is in use (another collector or "
                    "program listens there); stop it, or choose another port with --port"
                )
            return f"cannot listen on {where}: {exc.strerror or exc}"
    return None


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in found}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def _say(log_level: str, level: str, message: str) -> None:
    if LOG_LEVELS.index(level) <= LOG_LEVELS.index(log_level):
        print(f"inferwatch: {level}: {message}", file=sys.stderr)
