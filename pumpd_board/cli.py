"""``pumpd-board --config /etc/pumpd/pumpd.toml``: serve the board until SIGTERM or Ctrl-C.

The listening socket is bound before anything is served and its real address printed as
one line (``pumpd-board ready url=...``), so ``listen = "127.0.0.1:0"`` (tests, the demo)
tells where it landed. Exit 2 for a configuration it refuses (every problem named), 1 when
the address cannot be bound.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import click
import structlog
import uvicorn

from pumpd.config import ConfigError

from .app import create_app
from .settings import BoardSettings, load_settings

DEFAULT_CONFIG = "/etc/pumpd/pumpd.toml"


def bind(settings: BoardSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def _log_setup() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False)
            if sys.stderr.isatty()
            else structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="pumpd's configuration file: [daemon] socket and timezone, and [board].",
)
@click.option("--check", is_flag=True, help="Check the file's [board] settings and exit.")
def main(config_path: Path, check: bool) -> None:
    """The read-only nurse-station board of every chair pumpd supervises."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        for key, message in exc.problems:
            click.echo(f"{config_path}: {key}: {message}", err=True)
        sys.exit(2)
    if check:
        click.echo(
            f"{config_path}: board ok: listen {settings.host}:{settings.port}, socket "
            f"{settings.socket}, zone {settings.timezone}"
        )
        return
    _log_setup()
    try:
        sock = bind(settings)
    except OSError as exc:
        click.echo(
            f"pumpd-board: cannot listen on {settings.host}:{settings.port}: {exc}", err=True
        )
        sys.exit(1)
    _host, port = sock.getsockname()[:2]
    settings = _with_port(settings, int(port))
    app = create_app(settings)
    click.echo(
        f"pumpd-board ready url={settings.url} socket={settings.socket} zone={settings.timezone}"
    )
    sys.stdout.flush()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        server_header=False,
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _with_port(settings: BoardSettings, port: int) -> BoardSettings:
    from dataclasses import replace

    return replace(settings, port=port)
