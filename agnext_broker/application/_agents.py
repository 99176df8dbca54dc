"""The agent types a runtime knows, and the agents it has activated."""

from __future__ import annotations

import asyncio
import inspect
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

from ..base import (
    Agent,
    AgentId,
    AgentInstantiationContext,
    AgentRuntime,
    AgentType,
    UndeliverableException,
)
from ._telemetry import Telemetry
from ._turns import TurnGate

logger = logging.getLogger("agnext_broker")

T = TypeVar("T", bound=Agent)
Factory = Callable[[], Any]


def handles_concurrently(agent_class: type[Any] | None) -> bool:
    return bool(getattr(agent_class, "concurrent_handling", False))


class AgentDirectory:
    """Factories by agent type, the agents they created, and each agent's turn gate.

    A gate exists per AgentId before its agent does: a message takes its place in line when it
    arrives, and the agent is created inside the first turn.
    """

    def __init__(self, runtime: AgentRuntime, telemetry: Telemetry) -> None:
        self._runtime = runtime
        self._telemetry = telemetry
        self._factories: dict[str, Factory] = {}
        self._instance_classes: dict[str, type[Any]] = {}
        self._active: dict[AgentId, Agent] = {}
        self._activating: dict[AgentId, asyncio.Future[Agent]] = {}
        self._gates: dict[AgentId, TurnGate] = {}
        self._concurrent_types: set[str] = set()

    @property
    def agent_types(self) -> frozenset[str]:
        return frozenset(self._factories)

    def is_registered(self, agent_type: str) -> bool:
        return agent_type in self._factories

    def active_ids(self) -> list[AgentId]:
        return list(self._active)

    def agents(self) -> Iterator[Agent]:
        return iter(list(self._active.values()))

    def get_active(self, agent_id: AgentId) -> Agent | None:
        return self._active.get(agent_id)

    def gate(self, agent_id: AgentId) -> TurnGate | None:
        """The agent's turn gate, or ``None`` if its class handles messages concurrently."""
        gate = self._gates.get(agent_id)
        if gate is None:
            if agent_id.type in self._concurrent_types:
                return None
            gate = self._gates[agent_id] = TurnGate()
        return gate

    def register_factory(
        self,
        agent_type: str | AgentType,
        factory: Callable[[], T | Awaitable[T]],
        expected_class: type[T] | None,
    ) -> AgentType:
        name = agent_type.type if isinstance(agent_type, AgentType) else agent_type
        AgentId(name, "default")  # validates the type name
        if name in self._factories:
            raise ValueError(f"Agent type {name!r} is already registered.")
        self._factories[name] = _checked_factory(factory, expected_class)
        if handles_concurrently(expected_class):
            self._concurrent_types.add(name)
        return AgentType(name)

    async def register_instance(self, agent: Agent, agent_id: AgentId) -> AgentId:
        if agent_id in self._active:
            raise ValueError(f"Agent {agent_id} is already registered.")
        known_class = self._instance_classes.get(agent_id.type)
        if known_class is None:
            if agent_id.type in self._factories:
                raise ValueError(
                    f"Agent type {agent_id.type!r} has a factory; agent instances and factories "
                    "cannot share a type."
                )
            self._factories[agent_id.type] = _instance_only_factory(agent_id.type)
            self._instance_classes[agent_id.type] = type(agent)
        elif known_class is not type(agent):
            raise ValueError(
                f"Instances of agent type {agent_id.type!r} must all be {known_class.__name__}."
            )
        await agent.bind_id_and_runtime(agent_id, self._runtime)
        self._add_active(agent_id, agent)
        return agent_id

    def _add_active(self, agent_id: AgentId, agent: Agent) -> None:
        self._active[agent_id] = agent
        if handles_concurrently(type(agent)) and agent_id.type not in self._concurrent_types:
            # Learnt only now (a factory without expected_class): stop queueing its messages.
            self._concurrent_types.add(agent_id.type)
            for gated_id in [g for g in self._gates if g.type == agent_id.type]:
                self._gates.pop(gated_id).open_all()

    async def activate(self, agent_id: AgentId) -> Agent:
        """The agent ``agent_id``, created by its factory on first use.

        Raises:
            UndeliverableException: no factory is registered for the agent type.
        """
        agent = self._active.get(agent_id)
        if agent is not None:
            return agent
        pending = self._activating.get(agent_id)
        if pending is not None:
            return await asyncio.shield(pending)
        factory = self._factories.get(agent_id.type)
        if factory is None:
            raise UndeliverableException(f"No agent type {agent_id.type!r} is registered.")
        future: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
        self._activating[agent_id] = future
        try:
            agent = await self._create(factory, agent_id)
            self._add_active(agent_id, agent)
            future.set_result(agent)
            return agent
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: concurrent waiters may not exist
            raise
        finally:
            del self._activating[agent_id]

    def deactivate(self, agent_id: AgentId) -> Agent | None:
        gate = self._gates.get(agent_id)
        if gate is not None and not gate.busy and not gate.waiting:
            del self._gates[agent_id]
        return self._active.pop(agent_id, None)

    async def _create(self, factory: Factory, agent_id: AgentId) -> Agent:
        with (
            self._telemetry.span("create", agent_id),
            AgentInstantiationContext.populate_context((self._runtime, agent_id)),
        ):
            try:
                arity = len(inspect.signature(factory).parameters)
                if arity == 0:
                    agent = factory()
                elif arity == 2:
                    warnings.warn(
                        "Agent factories taking (runtime, agent_id) are deprecated; use "
                        "AgentInstantiationContext inside a factory taking no argument.",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    agent = cast(Callable[[AgentRuntime, AgentId], Any], factory)(
                        self._runtime, agent_id
                    )
                else:
                    raise ValueError("An agent factory takes no argument.")
                if inspect.isawaitable(agent):
                    agent = await agent
            except Exception:
                logger.exception("creating agent %s failed", agent_id)
                raise
        await agent.bind_id_and_runtime(agent_id, self._runtime)
        return cast(Agent, agent)


def _checked_factory(
    factory: Callable[[], T | Awaitable[T]], expected_class: type[T] | None
) -> Factory:
    if expected_class is None:
        return factory
    params = inspect.signature(factory).parameters

    async def checked(*args: Any) -> T:
        made = cast(Callable[..., Any], factory)(*args)
        agent = await made if inspect.isawaitable(made) else made
        if not isinstance(agent, expected_class):
            raise ValueError(
                f"Factory registered for {expected_class.__name__} returned {type(agent).__name__}."
            )
        return agent

    if len(params) == 2:
        return checked
    return lambda: checked()


def _instance_only_factory(agent_type: str) -> Factory:
    def refuse() -> Agent:
        raise UndeliverableException(
            f"Agent type {agent_type!r} only has registered instances, and none has this key. "
            "If this came from a publish, the type may be subscribed to a topic whose source is "
            "not an instance key (register_instance(..., skip_class_subscriptions=True))."
        )

    return refuse
