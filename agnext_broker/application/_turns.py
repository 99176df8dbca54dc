"""Turn-based execution per agent, with reentrancy along a call chain.

Every message carries a call-chain id: a send or publish made outside any handler starts a new
chain, and a handler's own sends carry its chain on. An agent handles one turn at a time, in
arrival order. A message of the chain that owns the current turn goes in at once: its caller,
somewhere up the chain, is suspended waiting for it, so making it wait would deadlock
(A calls B, B calls A).
"""

from __future__ import annotations

import asyncio
from collections import deque


class TurnGate:
    """Admits one call chain at a time into an agent; waiters are served in arrival order."""

    __slots__ = ("_depth", "_owner", "_waiters")

    def __init__(self) -> None:
        self._owner: str | None = None
        self._depth = 0
        self._waiters: deque[tuple[str, asyncio.Future[None]]] = deque()

    @property
    def busy(self) -> bool:
        return self._depth > 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_enter(self, chain_id: str) -> bool:
        """Enter at once if the agent is idle or the chain owns the turn."""
        if self._depth == 0:
            if self._waiters:
                return False
            self._owner = chain_id
            self._depth = 1
            return True
        if chain_id == self._owner:
            self._depth += 1
            return True
        return False

    def join(self, chain_id: str) -> asyncio.Future[None] | None:
        """Take a place in line now: ``None`` if the turn is already ours, else a ticket to
        :meth:`wait` on. Joining synchronously is what keeps arrival order."""
        if self.try_enter(chain_id):
            return None
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((chain_id, ticket))
        return ticket

    async def wait(self, ticket: asyncio.Future[None]) -> None:
        """Wait until the ticket's turn comes; if cancelled, the place in line is given up."""
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self.leave()  # the turn was handed to us as we were cancelled: pass it on
            else:
                self._forget(ticket)
            raise

    async def enter(self, chain_id: str) -> None:
        """Wait for this chain's turn; pair every successful enter with one :meth:`leave`."""
        ticket = self.join(chain_id)
        if ticket is not None:
            await self.wait(ticket)

    def leave(self) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        self._owner = None
        while self._waiters:
            chain_id, waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self._owner = chain_id
            self._depth = 1
            waiter.set_result(None)
            self._admit_same_chain(chain_id)
            return

    def _admit_same_chain(self, chain_id: str) -> None:
        # Messages of the new owner's chain that queued earlier belong to its turn too.
        if not any(c == chain_id for c, _ in self._waiters):
            return
        keep: deque[tuple[str, asyncio.Future[None]]] = deque()
        for entry in self._waiters:
            if entry[0] == chain_id and not entry[1].done():
                self._depth += 1
                entry[1].set_result(None)
            else:
                keep.append(entry)
        self._waiters = keep

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        self._waiters = deque(entry for entry in self._waiters if entry[1] is not waiter)
