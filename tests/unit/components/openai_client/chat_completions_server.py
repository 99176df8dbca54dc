"""A local HTTP server that speaks the chat completions protocol, for the OpenAI client's tests.

It answers each request with the next scripted :class:`Reply`: a JSON body with a status, or a
stream of server-sent events (``data: {...}`` ... ``data: [DONE]``, chunked), or nothing until
the client goes away. It records every request, and tells the test when a request waits for an
answer (``waiting``) and when the client closed that connection (``disconnected``). It runs on
the test's event loop, on asyncio streams alone, so it needs no package of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    """The JSON body (when not a stream)."""
    events: list[dict[str, Any]] | None = None
    """The chunks of a stream, each sent as a ``data:`` event, then ``data: [DONE]``."""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    """Send nothing (or, with ``events``, stop after them) until the client closes."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]


def completion(
    content: str | None = "Hello!",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = (11, 3),
    model: str = "test-model",
    **message: Any,
) -> dict[str, Any]:
    """A chat completion with one choice."""
    answer: dict[str, Any] = {"role": "assistant", "content": content, **message}
    if tool_calls is not None:
        answer["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": answer, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A stream chunk: a delta, or (with ``delta=None``) the usage chunk, which has no choices."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "test-model",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def error(status: int, message: str) -> Reply:
    kind = "rate_limit_exceeded" if status == 429 else "server_error"
    # retry-after-ms: the client's retries wait a millisecond, not their default backoff
    return Reply(
        status=status,
        body={"error": {"message": message, "type": kind, "code": kind}},
        headers={"retry-after-ms": "1"},
    )


_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


class ChatCompletionsServer:
    """``async with ChatCompletionsServer() as server:``; ``server.url`` is the API's base URL."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Request] = []
        self.waiting = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.port = 0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def answer(self, *replies: Reply | dict[str, Any]) -> None:
        """Script the next answers (a dict is a 200 with that JSON body)."""
        for reply in replies:
            self.replies.append(reply if isinstance(reply, Reply) else Reply(body=reply))

    @property
    def last(self) -> Request:
        return self.requests[-1]

    async def __aenter__(self) -> ChatCompletionsServer:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        # closing a connection ends its task (cancelling it would make asyncio log the task)
        for writer in self._connections.values():
            writer.close()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while (request := await self._read(reader)) is not None:
                self.requests.append(request)
                reply = self.replies.popleft() if self.replies else error(500, "nothing scripted")
                if not await self._write(reply, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed an idle connection
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        url = urlsplit(target)
        return Request(method, url.path, parse_qs(url.query), headers, json.loads(raw or b"{}"))

    async def _write(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Send ``reply``; False when the connection is over."""
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        if reply.events is None and not reply.hang:
            body = json.dumps(reply.body).encode()
            head += ["content-type: application/json", f"content-length: {len(body)}"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            return True
        if reply.events is not None:
            head += ["content-type: text/event-stream", "transfer-encoding: chunked"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            for event in reply.events:
                self._send_chunk(writer, f"data: {json.dumps(event)}\n\n".encode())
            await writer.drain()
        if reply.hang:
            self.waiting.set()
            while await reader.read(65536):
                pass  # nothing more comes from a client that waits for the answer
            self.disconnected.set()
            return False
        self._send_chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
