"""A TCP proxy on 127.0.0.1 for cutting, stalling and slowing the network between the runtime and
its servers, as aio-pika's own suite does with ``aiomisc_pytest.TCPProxy``.

``await TcpProxy.start(target_port)`` listens on a free port and forwards every connection to
the target. Then:

- :meth:`reset_all`: cut every connection with an RST (``SO_LINGER`` 0): both ends notice at once;
- :meth:`refuse`: also refuse new connections until :meth:`accept` (the server is gone);
- :meth:`stall` / :meth:`resume`: stop forwarding bytes without closing anything (a black
  hole: only heartbeats and timeouts notice);
- ``delay``: seconds to hold each chunk before forwarding it (a slow network).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in (self.client, self.server):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self._links: set[_Link] = set()
        self._accepting = True
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0  # accepted so far

    @classmethod
    async def start(cls, target_port: int) -> TcpProxy:
        proxy = cls(target_port)
        proxy._server = await asyncio.start_server(proxy._on_client, HOST, 0)
        proxy.port = int(proxy._server.sockets[0].getsockname()[1])
        return proxy

    def url_for(self, url: str, port: int) -> str:
        """``url`` with ``:<port>`` of the real server replaced by the proxy's."""
        return url.replace(f":{port}", f":{self.port}", 1)

    @property
    def open_links(self) -> int:
        return len(self._links)

    def reset_all(self) -> None:
        for link in list(self._links):
            link.reset()
        self._links.clear()

    def refuse(self) -> None:
        self._accepting = False
        self.reset_all()

    def accept(self) -> None:
        self._accepting = True

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self.reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._accepting:
            _Link(writer, writer).reset()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            _Link(writer, writer).reset()
            return
        self.connections += 1
        link = _Link(writer, server_writer)
        link.tasks = [
            asyncio.create_task(self._pipe(reader, server_writer)),
            asyncio.create_task(self._pipe(server_reader, writer)),
        ]
        self._links.add(link)
        ended = asyncio.gather(*link.tasks, return_exceptions=True)
        ended.add_done_callback(lambda _: self._links.discard(link))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                await self._flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
