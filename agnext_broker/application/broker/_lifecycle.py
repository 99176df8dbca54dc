"""Where a broker runtime is in its life, and the session it holds while it runs.

    new ─start()─> starting ─connected─> running ─stop()─> stopping ─drained─> stopped
                      └──────could not connect──────> failed

Sends, publishes and state calls made while the runtime is ``new``, ``starting`` or ``stopped``
wait for it to run, within their own bound (``rpc_timeout``, ``publish_timeout``); made while it
drains (``stopping``), they go out as usual: the handlers still running need them. A runtime
that failed to start fails them at once, with the reason.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from ...base import AgnextTimeoutError, ServiceUnavailableError
from ._session import Session

State = Literal["new", "starting", "running", "stopping", "stopped", "failed"]


class Lifecycle:
    def __init__(self) -> None:
        self.state: State = "new"
        self.session: Session | None = None
        self.start_error: BaseException | None = None
        self._changed = asyncio.Event()

    def become(self, state: State, session: Session | None = None) -> None:
        self.state = state
        if state in ("running", "stopping"):
            assert session is not None
        self.session = session if state in ("running", "stopping") else None
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def started(self) -> bool:
        """``start()`` was called and ``stop()`` not yet (it may have failed to connect)."""
        return self.state in ("starting", "running", "failed")

    @property
    def running(self) -> Session | None:
        """The session, if the runtime runs (not while it drains)."""
        return self.session if self.state == "running" else None

    async def until_running(
        self, deadline: float, timeout_error: type[AgnextTimeoutError]
    ) -> Session:
        """The session, once the runtime runs (or while it drains); waits for a start until
        ``deadline`` (``loop.time()``).

        Raises:
            ServiceUnavailableError: the runtime could not start.
            AgnextTimeoutError: (``timeout_error``) it did not start by ``deadline``.
        """
        loop = asyncio.get_running_loop()
        while True:
            if self.session is not None:
                return self.session
            if self.state == "failed" and self.start_error is not None:
                raise ServiceUnavailableError(
                    f"the runtime could not start: {self.start_error}"
                ) from self.start_error
            left = deadline - loop.time()
            if left <= 0:
                raise timeout_error(
                    "The runtime was not started in time: call runtime.start() before (or "
                    "soon after) sending or publishing."
                )
            changed = self._changed
            try:
                async with asyncio.timeout(left):
                    await changed.wait()
            except TimeoutError:
                pass
