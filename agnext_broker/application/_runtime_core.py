"""What every runtime does the same way: agent types and instances, subscriptions, serializers,
state by ``"type/key"``, and invoking handlers in turn. Runtimes add how messages travel."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

from opentelemetry.trace import TracerProvider

from ..base import (
    Agent,
    AgentId,
    AgentMetadata,
    AgentRuntime,
    AgentType,
    CancellationToken,
    InterventionHandler,
    MessageContext,
    MessageSerializer,
    SerializationRegistry,
    Subscription,
    UndeliverableException,
)
from ..base._contexts import current_handler_frame
from ._agents import AgentDirectory
from ._interventions import Interventions
from ._invoke import invoke_handler
from ._subscriptions import SubscriptionTable
from ._telemetry import Telemetry
from ._turns import Place

T = TypeVar("T", bound=Agent)
T_co = TypeVar("T_co")


_id_prefix = uuid.uuid4().hex
_id_counter = itertools.count()


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = uuid.uuid4().hex, itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)


def new_message_id() -> str:
    """The id of a message sent or published now: inside a handler that runs on a delivery that
    may come again (the broker runtime), the next of the ids derived from that delivery, so
    that running the handler again sends the same ids and receivers apply them once; otherwise
    an id unique across processes, a random prefix per process and a counter."""
    frame = current_handler_frame()
    if frame is not None and frame.message_ids is not None:
        return next(frame.message_ids)
    return f"{_id_prefix}-{next(_id_counter)}"


def derived_message_ids(delivery: str) -> Iterator[str]:
    """``<delivery>.0``, ``<delivery>.1``, ...: the ids of what a handler sends, in order."""
    return (f"{delivery}.{n}" for n in itertools.count())


def calling_path() -> tuple[Hashable, ...]:
    """The call path of a send made now: the current handler's turn and those it runs for."""
    frame = current_handler_frame()
    return () if frame is None else (*frame.path, frame.turn_id)


class RuntimeCore(AgentRuntime):
    """The shared half of a runtime; subclasses implement send_message and publish_message."""

    def __init__(
        self,
        *,
        intervention_handlers: Sequence[InterventionHandler] | None = None,
        tracer_provider: TracerProvider | None = None,
        runtime_name: str,
    ) -> None:
        self._telemetry = Telemetry(tracer_provider, runtime_name)
        self._interventions = Interventions(intervention_handlers)
        self._directory = AgentDirectory(self, self._telemetry)
        self._subscriptions = SubscriptionTable()
        self._serializers = SerializationRegistry()

    # -- agents ---------------------------------------------------------------------------------

    async def register_factory(
        self,
        type: str | AgentType,
        agent_factory: Callable[[], T | Awaitable[T]],
        *,
        expected_class: type[T] | None = None,
    ) -> AgentType:
        return self._directory.register_factory(type, agent_factory, expected_class)

    async def register_agent_instance(self, agent_instance: Agent, agent_id: AgentId) -> AgentId:
        return await self._directory.register_instance(agent_instance, agent_id)

    async def _agent(self, agent_id: AgentId) -> Agent:
        agent = self._directory.get_active(agent_id)
        if agent is None:
            agent = await self._directory.activate(agent_id)
        return agent

    async def try_get_underlying_agent_instance(
        self,
        id: AgentId,
        type: type[T] = Agent,  # type: ignore[assignment]
    ) -> T:
        if not self._directory.is_registered(id.type):
            raise UndeliverableException(f"No agent type {id.type!r} is registered.")
        agent = await self._agent(id)
        if not isinstance(agent, type):
            raise TypeError(f"Agent {id} is a {agent.__class__.__name__}, not a {type.__name__}.")
        return agent

    @overload
    async def get(self, id: AgentId, /, *, lazy: bool = ...) -> AgentId: ...

    @overload
    async def get(
        self, type: AgentType | str, /, key: str = ..., *, lazy: bool = ...
    ) -> AgentId: ...

    async def get(
        self, id_or_type: AgentId | AgentType | str, /, key: str = "default", *, lazy: bool = True
    ) -> AgentId:
        if isinstance(id_or_type, AgentId):
            agent_id = id_or_type
        else:
            agent_type = id_or_type.type if isinstance(id_or_type, AgentType) else id_or_type
            agent_id = AgentId(agent_type, key)
        if not lazy:
            await self._create_now(agent_id)
        return agent_id

    async def _create_now(self, agent_id: AgentId) -> None:
        """Create the agent if it does not exist yet (``get(..., lazy=False)``)."""
        await self._agent(agent_id)

    async def _in_turn(self, agent_id: AgentId, call: Callable[[Agent], Awaitable[Any]]) -> Any:
        """Run ``call(agent)`` in the agent's turn, so it never sees a handler half-way."""
        place = Place(self._directory.gate(agent_id), object(), calling_path())
        await place.wait()
        try:
            return await call(await self._agent(agent_id))
        finally:
            place.leave()

    async def agent_metadata(self, agent: AgentId) -> AgentMetadata:
        return (await self._agent(agent)).metadata

    async def agent_save_state(self, agent: AgentId) -> Mapping[str, Any]:
        state: Mapping[str, Any] = await self._in_turn(agent, lambda a: a.save_state())
        return state

    async def agent_load_state(self, agent: AgentId, state: Mapping[str, Any]) -> None:
        await self._in_turn(agent, lambda a: a.load_state(state))

    async def save_state(self) -> Mapping[str, Any]:
        """The state of every active agent, keyed ``"type/key"``."""
        return {
            str(agent_id): dict(await self.agent_save_state(agent_id))
            for agent_id in self._directory.active_ids()
        }

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Load each ``"type/key"`` entry into its agent; types not registered here are skipped."""
        for key, agent_state in state.items():
            agent_id = AgentId.from_str(key)
            if self._directory.is_registered(agent_id.type):
                await self.agent_load_state(agent_id, agent_state)

    # -- subscriptions and serializers ----------------------------------------------------------

    async def add_subscription(self, subscription: Subscription) -> None:
        self._subscriptions.add(subscription)

    async def remove_subscription(self, id: str) -> None:
        self._subscriptions.remove(id)

    def add_message_serializer(
        self, serializer: MessageSerializer[Any] | Sequence[MessageSerializer[Any]]
    ) -> None:
        self._serializers.add_serializer(serializer)

    # -- delivery -------------------------------------------------------------------------------

    def _spawn_in_turn(
        self, place: Place, work: Callable[[], Awaitable[T_co]]
    ) -> asyncio.Task[T_co]:
        """Run ``work`` (which ends the turn of ``place``) in a task; if the task is cancelled
        before it starts, its place in the line is given up."""
        started = False

        async def run() -> T_co:
            nonlocal started
            started = True
            return await work()

        task = asyncio.get_running_loop().create_task(run())
        if place.gate is not None:

            def give_up_if_never_started(_: asyncio.Task[T_co]) -> None:
                if not started:
                    place.abandon()

            task.add_done_callback(give_up_if_never_started)
        return task

    def _join_turn(self, recipient: AgentId, turn: Hashable, path: tuple[Hashable, ...]) -> Place:
        """Take the message's place in the recipient's line, now (this keeps arrival order)."""
        return Place(self._directory.gate(recipient), turn, path)

    async def _handle(
        self, recipient: AgentId, message: Any, ctx: MessageContext, place: Place
    ) -> Any:
        """Wait for the turn of ``place``, run the handler, and end the turn."""
        await place.wait()
        try:
            return await self._run_handler(recipient, message, ctx, place.turn, place.path)
        finally:
            place.leave()

    async def _run_handler(
        self,
        recipient: AgentId,
        message: Any,
        ctx: MessageContext,
        turn: Hashable,
        path: tuple[Hashable, ...],
    ) -> Any:
        """Activate the agent if needed and call its handler (the caller holds the turn)."""
        agent = self._directory.get_active(recipient)
        if agent is None:
            agent = await self._directory.activate(recipient)
        return await invoke_handler(agent, message, ctx, turn, path, self._telemetry)

    @staticmethod
    def _token(cancellation_token: CancellationToken | None) -> CancellationToken:
        return cancellation_token if cancellation_token is not None else CancellationToken()

    async def _close_agents(self) -> None:
        for agent in self._directory.agents():
            await agent.close()
