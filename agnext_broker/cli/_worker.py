"""``agnext-broker worker``: host the agents an application function registers."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from ..application.broker import BrokerAgentRuntime, BrokerSettings
from ..application.broker._check import Finding, check
from ._errors import CommandError

logger = logging.getLogger("agnext_broker.worker")

App = Callable[[BrokerAgentRuntime], Any]


def load_app(spec: str) -> App:
    """Import ``module:function``.

    Raises:
        click.BadParameter: the spec is malformed, does not import, or names no function.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(
            f"{spec!r}: expected module:function, e.g. myapp.agents:register", param_hint="--app"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the user's own modules import
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # an app's module may raise anything while importing
        raise click.BadParameter(
            f"{spec!r}: cannot import {module_name!r} ({type(e).__name__}: {e}); check the "
            "module path and that its package is installed",
            param_hint="--app",
        ) from e
    app = getattr(module, attribute, None)
    if app is None:
        raise click.BadParameter(
            f"{spec!r}: {module_name} has no attribute {attribute!r}", param_hint="--app"
        )
    if not callable(app) or inspect.isclass(app):
        raise click.BadParameter(
            f"{spec!r}: {module_name}.{attribute} is not a function that takes the runtime",
            param_hint="--app",
        )
    return app  # type: ignore[no-any-return]


async def register(app: App, runtime: BrokerAgentRuntime, spec: str) -> None:
    """Run the app's registering function.

    Raises:
        CommandError: it failed (the message names the app and the error).
    """
    try:
        registered = app(runtime)
        if inspect.isawaitable(registered):
            await registered
    except Exception as e:
        raise CommandError(f"--app {spec}: registering failed: {type(e).__name__}: {e}") from e


async def run_worker(app: App, spec: str, settings: BrokerSettings, **runtime_args: Any) -> int:
    """Host the agents ``app`` registers until SIGTERM or SIGINT, then drain and exit.

    A signal while connecting ends the start-up at once; a second signal during the drain ends
    the process at once (what it had not acknowledged goes back to its queues)."""
    runtime = BrokerAgentRuntime(settings, **runtime_args)
    await register(app, runtime, spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            stop.set()
            return
        logger.warning(
            "second %s: exiting now; unacknowledged deliveries go back to their queues",
            signal.Signals(signum).name,
        )
        logging.shutdown()
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    starting = asyncio.ensure_future(_start(runtime))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        logger.info("stopped before it was ready")
        await runtime.stop()
        await asyncio.gather(starting, return_exceptions=True)
        return 1
    stopping.cancel()
    error = starting.exception()
    if error is not None:
        raise CommandError(f"the worker could not start: {error}")
    logger.info(
        "worker ready",
        extra={"namespace": settings.namespace, "agent_types": ",".join(runtime.hosted_types)},
    )
    await stop.wait()
    logger.info(
        "draining: finishing the messages in flight, then leaving (a second signal exits now)"
    )
    await runtime.stop()
    await runtime.close()
    logger.info("worker stopped")
    return 0


async def _start(runtime: BrokerAgentRuntime) -> None:
    await runtime.start()


async def check_worker(app: App | None, spec: str | None, settings: BrokerSettings) -> int:
    """Print what a worker with these settings finds; 0 if it could run."""
    findings = await check(settings)
    if app is not None and spec is not None:
        runtime = BrokerAgentRuntime(settings)
        try:
            await register(app, runtime, spec)
            types = ", ".join(runtime.hosted_types) or "none"
            findings.append(Finding("app", True, f"{spec} registers agent types: {types}"))
        except CommandError as e:
            findings.append(Finding("app", False, str(e)))
    for finding in findings:
        mark = "ok  " if finding.ok else "FAIL"
        click.echo(f"{mark} {finding.what:<9} {finding.detail}")
    ok = all(f.ok for f in findings)
    click.echo("the worker can run here" if ok else "the worker cannot run: fix what FAILed")
    return 0 if ok else 1
