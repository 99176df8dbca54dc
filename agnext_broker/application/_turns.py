"""Turn-based execution per agent, with reentrancy along a call path.

An agent handles one turn at a time, in arrival order. Each turn has an id (unique for that
agent), and a message carries the ids of the turns suspended above it: the handlers that are
waiting, directly or through other agents, for it to be handled (its *call path*). A message
whose call path holds a turn the agent is running goes in at once: that turn waits for it, so
queueing it would deadlock (A calls B, B calls A; or A calls itself). Every other message waits
for its turn, including a sibling sent by the same handler and every published event (nobody
waits for an event).

A message cannot wait in line for a turn its path holds: a turn is in its path only once the turn
has started, and a started turn admits it at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Sequence

TurnId = Hashable
CallPath = Sequence[Hashable]
Waker = asyncio.Future[None] | Callable[[], None]


class TurnGate:
    """Admits one turn at a time into an agent, plus the turns its call paths wait for."""

    __slots__ = ("_active", "_waiters")

    def __init__(self) -> None:
        self._active: dict[TurnId, int] = {}
        self._waiters: deque[tuple[TurnId, Waker]] = deque()

    @property
    def busy(self) -> bool:
        return bool(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _admits(self, path: CallPath) -> bool:
        active = self._active
        return any(turn in active for turn in path)

    def _activate(self, turn: TurnId) -> None:
        self._active[turn] = self._active.get(turn, 0) + 1

    def try_enter(self, turn: TurnId, path: CallPath = ()) -> bool:
        """Enter at once if the agent is idle, or if ``path`` holds a running turn."""
        if not self._active:
            if self._waiters:
                return False
        elif not (path and self._admits(path)):
            return False
        self._activate(turn)
        return True

    def join(self, turn: TurnId, path: CallPath = ()) -> asyncio.Future[None] | None:
        """Take a place in line now: ``None`` if the turn is already running, else a ticket to
        :meth:`wait` on. Joining synchronously is what keeps arrival order."""
        if self.try_enter(turn, path):
            return None
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((turn, ticket))
        return ticket

    def defer(self, turn: TurnId, start: Callable[[], None]) -> None:
        """Queue a turn that is started by calling ``start()`` when it comes (at once if the
        agent is idle); whatever ``start`` launches must :meth:`leave` at its end. Unlike
        :meth:`join`, nothing waits meanwhile: a queued event costs no task and no future."""
        if self.try_enter(turn):
            start()
        else:
            self._waiters.append((turn, start))

    async def wait(self, turn: TurnId, ticket: asyncio.Future[None]) -> None:
        """Wait until the ticket's turn comes; if cancelled, the place in line is given up."""
        try:
            await ticket
        except asyncio.CancelledError:
            self.abandon(turn, ticket)
            raise

    async def enter(self, turn: TurnId, path: CallPath = ()) -> None:
        """Wait for the turn; pair every successful enter with one :meth:`leave`."""
        ticket = self.join(turn, path)
        if ticket is not None:
            await self.wait(turn, ticket)

    def abandon(self, turn: TurnId, ticket: asyncio.Future[None] | None) -> None:
        """Give up a place taken by :meth:`join` whose holder will not run (or was cancelled)."""
        if ticket is None or (ticket.done() and not ticket.cancelled()):
            self.leave(turn)
        else:
            ticket.cancel()
            self._waiters = deque(w for w in self._waiters if w[1] is not ticket)

    def leave(self, turn: TurnId) -> None:
        count = self._active.get(turn, 0) - 1
        if count > 0:
            self._active[turn] = count
            return
        self._active.pop(turn, None)
        if self._active:
            return
        while self._waiters:
            next_turn, waker = self._waiters.popleft()
            if self._wake(next_turn, waker):
                return

    def _wake(self, turn: TurnId, waker: Waker) -> bool:
        if isinstance(waker, asyncio.Future):
            if waker.done():
                return False  # cancelled while waiting
            self._activate(turn)
            waker.set_result(None)
        else:
            self._activate(turn)
            waker()
        return True

    def open_all(self) -> None:
        """Admit everyone waiting (the agent turned out to handle messages concurrently)."""
        while self._waiters:
            self._wake(*self._waiters.popleft())


class Place:
    """One message's place in one agent's turn line (``gate`` is ``None`` for an agent that
    handles messages concurrently)."""

    __slots__ = ("gate", "path", "ticket", "turn")

    def __init__(self, gate: TurnGate | None, turn: TurnId, path: CallPath) -> None:
        self.gate = gate
        self.turn = turn
        self.path = tuple(path)
        self.ticket = gate.join(turn, path) if gate is not None else None

    async def wait(self) -> None:
        if self.ticket is not None and self.gate is not None:
            await self.gate.wait(self.turn, self.ticket)

    def leave(self) -> None:
        if self.gate is not None:
            self.gate.leave(self.turn)

    def abandon(self) -> None:
        if self.gate is not None:
            self.gate.abandon(self.turn, self.ticket)
