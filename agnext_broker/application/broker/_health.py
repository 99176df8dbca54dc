"""The health port of a worker: ``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP.

It is served by the runtime's own event loop, so ``/healthz`` answering at all is the proof that
the loop is not blocked (a probe with a timeout then tells a stuck worker from a busy one);
``/readyz`` says whether the worker can do its work now (connected to RabbitMQ and Redis, every
partition it holds consumed, not draining) and why not, as JSON; ``/metrics`` is Prometheus'
text format. Anything else is 404. Nothing secret is ever in an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping

from ...base import ServiceUnavailableError
from ._metrics import Metrics

logger = logging.getLogger("agnext_broker")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_READ_LIMIT = 8192


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], tuple[bool, Mapping[str, object]]],
        metrics: Metrics,
    ) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one asked for, or the one the system chose for 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen.

        Raises:
            ServiceUnavailableError: the port cannot be bound (in use, not allowed).
        """
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as e:
            raise ServiceUnavailableError(
                f"cannot listen on {self._host}:{self._port} for /healthz, /readyz and /metrics "
                f"({e.strerror or e}); choose another AGNEXT_HEALTH_PORT"
            ) from e
        logger.info("health and metrics on http://%s:%d/", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
            if len(request) > _READ_LIMIT:
                return
            method, _, rest = request.decode("latin-1").partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            status, content_type, body = self._answer(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n"
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ready, details = self._ready()
            body = json.dumps({"ready": ready, **details}, default=str).encode() + b"\n"
            return (200 if ready else 503), "application/json", body
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self._metrics.text()
        return 404, "text/plain", b"try /healthz, /readyz or /metrics\n"
