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

from ..application.broker import BrokerAgentRuntime, BrokerSettings

logger = logging.getLogger("agnext_broker.worker")


def load_app(spec: str) -> Callable[[BrokerAgentRuntime], Any]:
    """Import ``module:function``.

    Raises:
        ValueError: the spec is malformed or does not name a callable.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--app {spec!r}: expected module:function, e.g. myapp.agents:register")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"--app {spec!r}: cannot import {module_name!r}: {e}") from e
    app = getattr(module, attribute, None)
    if not callable(app):
        raise ValueError(f"--app {spec!r}: {module_name} has no function {attribute!r}")
    return app  # type: ignore[no-any-return]


async def run_worker(app: Callable[[BrokerAgentRuntime], Any], settings: BrokerSettings) -> int:
    """Host the agents ``app`` registers until SIGTERM or SIGINT, then drain and exit.

    A signal while connecting ends the start-up at once; a second signal during the drain ends
    the process at once (what it had not acknowledged goes back to its queues)."""
    runtime = BrokerAgentRuntime(settings)
    registered = app(runtime)
    if inspect.isawaitable(registered):
        await registered
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
        logger.error("worker could not start: %s", error)
        return 1
    logger.info(
        "worker ready",
        extra={"worker_id": settings.worker_id, "namespace": settings.namespace},
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


def worker_main(
    app_spec: str, overrides: dict[str, Any]
) -> int:  # pragma: no cover - exercised in subprocesses
    try:
        app = load_app(app_spec)
        settings = BrokerSettings.from_env(**overrides)
    except ValueError as e:
        print(f"agnext-broker worker: {e}", file=sys.stderr)
        return 2
    return asyncio.run(run_worker(app, settings))
