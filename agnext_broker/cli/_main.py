"""The ``agnext-broker`` command: demo, worker, run, send, publish, inspect and dead-letters."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from ..application.broker._settings import variable
from . import _logging
from ._dead_letters import dead_letters_command
from ._demo import EXAMPLE_APP, run_broker_demo, run_demo
from ._errors import CommandError, run_async
from ._inject import publish_command, send_command
from ._inspect import inspect_command
from ._options import CONNECTION, load_settings, pop_settings, settings_options
from ._run import run_workers
from ._worker import check_worker, load_app, run_worker

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
LOG_FORMATS = click.Choice(["auto", "console", "json"])


def _version() -> str:
    try:
        return version("agnext-broker")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "unknown"


def log_options(command: Any) -> Any:
    command = click.option(
        "--log-format",
        type=LOG_FORMATS,
        default="auto",
        envvar="AGNEXT_LOG_FORMAT",
        show_default=True,
        help="console lines, JSON lines, or auto: console on a terminal [AGNEXT_LOG_FORMAT]",
    )(command)
    return click.option(
        "--log-level",
        type=LOG_LEVELS,
        default="info",
        envvar="AGNEXT_LOG_LEVEL",
        show_default=True,
        help="[AGNEXT_LOG_LEVEL]",
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", "-V", prog_name="agnext-broker")
def cli() -> None:
    """Multi-agent applications on autogen-core's agent API, standalone or on RabbitMQ + Redis.

    Settings not given as flags come from AGNEXT_* environment variables (or, for secrets, from
    the file named by AGNEXT_<NAME>_FILE), else the defaults.
    """


@cli.command()
@click.option("--keys", default="alpha,beta,gamma", show_default=True, help="one tallier per key")
@click.option("--items", type=click.IntRange(min=1), default=4, show_default=True, help="per key")
@click.option("--quiet", is_flag=True, help="print only the final report (standalone)")
@click.option(
    "--host-agents",
    is_flag=True,
    help="on the broker: host the example's agents in this process too (no worker needed)",
)
@settings_options(CONNECTION)
def demo(keys: str, items: int, quiet: bool, host_agents: bool, **flags: Any) -> None:
    """Run the tally example: on the standalone runtime, narrated; or, with --amqp-url or
    --redis-url (or AGNEXT_AMQP_URL), send a batch to workers of the example
    (agnext-broker worker --app agnext_broker.examples.tally:register) and print the report."""
    names = [key.strip() for key in keys.split(",") if key.strip()]
    if not names:
        raise click.BadParameter("give at least one key", param_hint="--keys")
    on_broker = host_agents or any(
        flags.get(name) or variable(name) in os.environ for name in ("amqp_url", "redis_url")
    )
    if not on_broker:
        sys.exit(asyncio.run(run_demo(names, items, quiet=quiet)))
    settings = load_settings(flags)
    try:
        sys.exit(run_async(run_broker_demo(settings, names, items, host_agents=host_agents)))
    except CommandError as e:
        if "No live worker hosts" in e.message and not host_agents:
            raise CommandError(
                f"{e.message.rstrip('.')}; start workers of the example first "
                f"(agnext-broker worker --app {EXAMPLE_APP}) or pass --host-agents"
            ) from None
        raise


@cli.command()
@click.option(
    "--app",
    "app_spec",
    envvar="AGNEXT_APP",
    help="module:function that registers the agents on the runtime [AGNEXT_APP]",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="connect, declare the topology, send a probe, import the app, say what was found; "
    "exit 0 if a worker could run, 1 if not",
)
@log_options
@settings_options()
def worker(
    app_spec: str | None, check_only: bool, log_level: str, log_format: str, **flags: Any
) -> None:
    """Host the agents that --app registers, on RabbitMQ and Redis, until SIGTERM or Ctrl-C
    (then drain: a second signal exits at once)."""
    settings = load_settings(flags)
    _logging.configure(log_level, log_format, settings.worker_id)  # type: ignore[arg-type]
    if check_only:
        app = load_app(app_spec) if app_spec else None
        sys.exit(run_async(check_worker(app, app_spec, settings)))
    if not app_spec:
        raise click.UsageError("give --app module:function (or AGNEXT_APP)")
    app = load_app(app_spec)
    from ._tracing import shutdown_tracing, tracer_provider_from_env

    tracer_provider = tracer_provider_from_env()
    try:
        sys.exit(run_async(run_worker(app, app_spec, settings, tracer_provider=tracer_provider)))
    finally:
        shutdown_tracing(tracer_provider)


@cli.command()
@click.option("--app", "app_spec", required=True, envvar="AGNEXT_APP", help="module:function")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=2, show_default=True)
@log_options
@settings_options()
def run(app_spec: str, workers: int, log_level: str, log_format: str, **flags: Any) -> None:
    """Start N worker processes of --app on this machine (Ctrl-C drains them all)."""
    load_app(app_spec)  # fail here, once, rather than in every worker
    given = {k: v for k, v in pop_settings(flags).items() if v is not None}
    load_settings(given)
    sys.exit(run_workers(app_spec, workers, given, log_level, log_format))


cli.add_command(send_command)
cli.add_command(publish_command)
cli.add_command(inspect_command)
cli.add_command(dead_letters_command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="agnext-broker")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
