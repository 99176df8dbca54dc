"""The broker runtime: agents on any number of workers sharing one RabbitMQ and one Redis."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from opentelemetry.trace import TracerProvider

from ...base import (
    Agent,
    AgentId,
    AgentMetadata,
    AgentType,
    AgnextTimeoutError,
    CancellationToken,
    DropMessage,
    InterventionHandler,
    MessageContext,
    NotAccessibleError,
    PublishTimeoutError,
    RpcTimeoutError,
    ServiceUnavailableError,
    Subscription,
    TopicId,
    UndeliverableException,
)
from .._runtime_core import RuntimeCore, calling_path, new_message_id
from . import _names as n
from ._redis import RegistryView, subscription_to_json
from ._replies import CONTROL_LOAD_STATE, CONTROL_METADATA, CONTROL_SAVE_STATE
from ._routing import routing_key
from ._session import Session
from ._settings import BrokerSettings, redact
from ._wire import Envelope

logger = logging.getLogger("agnext_broker")

T = TypeVar("T", bound=Agent)
State = Literal["new", "starting", "running", "stopping", "stopped", "failed"]


class BrokerAgentRuntime(RuntimeCore):
    """The AgentRuntime API on RabbitMQ and Redis, with no central host.

    Every process that uses a namespace runs one of these: a *worker* hosts the agent types
    registered on it (it consumes a fair share of their partition queues); a process that
    registers nothing only sends and publishes.

    Args:
        settings: connection and behaviour settings; by default read from ``AGNEXT_*``
            environment variables (see :class:`BrokerSettings`).
        amqp_url, redis_url, namespace: shortcuts overriding the same settings.
        intervention_handlers, tracer_provider: as for the standalone runtime.
        ignore_unhandled_exceptions: if ``False``, the first event handler exception that is
            dead-lettered is raised by :meth:`stop` / :meth:`stop_when_idle`.
    """

    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        amqp_url: str | None = None,
        redis_url: str | None = None,
        namespace: str | None = None,
        intervention_handlers: Sequence[InterventionHandler] | None = None,
        tracer_provider: TracerProvider | None = None,
        ignore_unhandled_exceptions: bool = True,
    ) -> None:
        super().__init__(
            intervention_handlers=intervention_handlers,
            tracer_provider=tracer_provider,
            runtime_name="broker",
        )
        overrides = {"amqp_url": amqp_url, "redis_url": redis_url, "namespace": namespace}
        base = settings if settings is not None else BrokerSettings.from_env()
        self.settings = base.with_changes(**{k: v for k, v in overrides.items() if v})
        self._names = n.Names(self.settings.namespace)
        self._ignore_unhandled_exceptions = ignore_unhandled_exceptions
        self._background_exception: BaseException | None = None
        self._session: Session | None = None
        self._state: State = "new"
        self._state_changed = asyncio.Event()
        self._starting: asyncio.Task[None] | None = None
        self._start_error: BaseException | None = None
        self._partitions: dict[str, int] = {}  # any agent type -> partition count (cache)
        self._message_types: dict[str, list[str]] = {}  # hosted type -> wire names it takes
        self._all_subscriptions: list[Subscription] = []
        self._subscriptions_version = -1
        self._reloading: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        self._state = state
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    def start(self) -> _Starting:
        """Connect and start hosting. Returns at once; ``await runtime.start()`` waits until
        connected (and raises if it cannot connect within ``connect_timeout``). Sends and
        publishes made before that wait for it, within their own bounds."""
        if self._state in ("starting", "running", "stopping"):
            raise RuntimeError("The runtime is already started.")
        self._start_error = None
        self._set_state("starting")
        self._starting = asyncio.get_running_loop().create_task(self._start())
        self._starting.add_done_callback(_log_start_failure)
        return _Starting(self._starting)

    async def _start(self) -> None:
        settings = self.settings
        logger.info(
            "starting broker runtime",
            extra={
                "worker_id": settings.worker_id,
                "namespace": settings.namespace,
                "amqp": redact(settings.amqp_url),
                "redis": redact(settings.redis_url),
            },
        )
        await self._forget_stopped_agents()
        try:
            session = await Session.open(
                settings,
                self._names,
                directory=self._directory,
                serializers=self._serializers,
                telemetry=self._telemetry,
                subscriptions=lambda: self._all_subscriptions,
                reload_subscriptions=self._reload_subscriptions,
                on_view=self._on_view,
                on_event_failure=self._event_failed,
            )
        except BaseException as e:
            self._start_error = e
            self._set_state("failed")
            raise
        self._session = session
        try:
            for agent_type in sorted(self._directory.agent_types):
                await self._host_type(session, agent_type)
            for subscription in self._subscriptions.subscriptions:
                await self._share_subscription(session, subscription)
            await self._reload_subscriptions()
            await session.begin()
        except BaseException as e:
            self._start_error = e
            self._session = None
            await session.close(asyncio.get_running_loop().time())
            self._set_state("failed")
            raise
        self._set_state("running")

    async def _forget_stopped_agents(self) -> None:
        """Instances kept after a stop may be stale once the runtime starts again: the
        partitions may have moved meanwhile."""
        for agent_id in self._directory.active_ids():
            agent = self._directory.deactivate(agent_id)
            if agent is not None:
                await agent.close()

    async def _until_running(
        self, deadline: float, timeout_error: type[AgnextTimeoutError]
    ) -> Session:
        """The session, once the runtime runs (or drains); waits for a start until
        ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            session = self._session
            if session is not None and self._state in ("running", "stopping"):
                return session
            if self._state == "failed" and self._start_error is not None:
                raise ServiceUnavailableError(
                    f"the runtime could not start: {self._start_error}"
                ) from self._start_error
            left = deadline - loop.time()
            if left <= 0:
                raise timeout_error(
                    "The runtime was not started in time: call runtime.start() before (or "
                    "soon after) sending or publishing."
                )
            changed = self._state_changed
            try:
                async with asyncio.timeout(left):
                    await changed.wait()
            except TimeoutError:
                pass

    def _on_view(self, view: RegistryView) -> None:
        """After every heartbeat: rebalance, end waits for unhosted types, pick up changed
        subscriptions."""
        session = self._session
        if session is None:
            return
        session.hosting.on_view(view)
        if session.liveness.trusts_absence():
            session.rpc.fail_unhosted(view.hosted_types, view.asked_at, self._names.namespace)
        if view.subscriptions_version != self._subscriptions_version and (
            self._reloading is None or self._reloading.done()
        ):
            self._reloading = asyncio.create_task(self._reload_quietly())

    async def _reload_quietly(self) -> None:
        try:
            await self._reload_subscriptions()
        except ServiceUnavailableError as e:
            logger.debug("reloading the subscriptions failed: %s", e)

    async def stop(self) -> None:
        """Drain: stop taking deliveries, finish the turns in flight (their messages go out,
        their state is saved and acked), give back what was not begun, release the partitions,
        leave the registry and disconnect, all within ``drain_timeout``.

        Raises:
            Exception: with ``ignore_unhandled_exceptions=False``, the first exception an event
                handler raised (its message went to the dead-letter queue).
        """
        if self._state not in ("starting", "running", "failed"):
            raise RuntimeError("The runtime is not started.")
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
        if starting is not None:
            await asyncio.gather(starting, return_exceptions=True)
        session = self._session
        if session is not None:
            self._set_state("stopping")
            deadline = asyncio.get_running_loop().time() + self.settings.drain_timeout
            logger.info(
                "draining: finishing the turns in flight, then leaving",
                extra={"worker_id": self.settings.worker_id},
            )
            try:
                await session.close(deadline)
            finally:
                self._session = None
        self._set_state("stopped")
        error, self._background_exception = self._background_exception, None
        if error is not None:
            raise error

    async def stop_when_idle(self, check_period: float = 0.05) -> None:
        """Stop once nothing is in flight here: no delivery being handled, no message of this
        process waiting for its confirm, no queue this worker consumes holding a message, and
        no RPC of this process waiting for its response."""
        loop = asyncio.get_running_loop()
        session = await self._until_running(
            loop.time() + self.settings.rpc_timeout, RpcTimeoutError
        )
        hosting, transport, rpc = session.hosting, session.transport, session.rpc

        stats = hosting.ownership.stats

        def quiet() -> bool:
            return not rpc.waiting and hosting.in_flight == 0 and transport.in_flight == 0

        async def idle() -> bool:
            # A delivery could come, be handled and publish to a queue already looked at while
            # the queues are asked one by one: then nothing was received in between.
            received = stats.received
            return (
                quiet()
                and await hosting.ownership.queues_empty()
                and quiet()
                and (stats.received == received)
            )

        while not await idle():  # noqa: ASYNC110 - the queues can only be polled
            await asyncio.sleep(check_period)
        await self.stop()

    async def stop_when(self, condition: Callable[[], bool], check_period: float = 0.05) -> None:
        while not condition():  # noqa: ASYNC110 - a user condition can only be polled
            await asyncio.sleep(check_period)
        await self.stop()

    async def close(self) -> None:
        if self._state in ("starting", "running", "failed"):
            await self.stop()
        await self._close_agents()
        for agent_id in self._directory.active_ids():
            self._directory.deactivate(agent_id)

    def _event_failed(self, error: BaseException) -> None:
        if not self._ignore_unhandled_exceptions and self._background_exception is None:
            self._background_exception = error

    # -- registration ---------------------------------------------------------------------------

    async def register_factory(
        self,
        type: str | AgentType,
        agent_factory: Callable[[], T | Awaitable[T]],
        *,
        expected_class: type[T] | None = None,
    ) -> AgentType:
        agent_type = await super().register_factory(
            type, agent_factory, expected_class=expected_class
        )
        self._message_types[agent_type.type] = _handled_message_types(expected_class)
        session = self._session
        if session is not None and self._state == "running":
            await self._host_type(session, agent_type.type)
            # announce the type and consume its partitions now
            await session.hosting.ownership.rebalance(await session.liveness.beat())
        return agent_type

    async def register_agent_instance(self, agent_instance: Agent, agent_id: AgentId) -> AgentId:
        raise NotAccessibleError(
            "register_agent_instance is not supported by the broker runtime: an agent instance "
            "cannot move between workers. Register a factory instead."
        )

    async def _host_type(self, session: Session, agent_type: str) -> None:
        partitions = await session.registry.register_type(
            agent_type, self.settings.partitions, self._message_types.get(agent_type, [])
        )
        self._partitions[agent_type] = partitions
        topology = session.transport.topology
        await topology.declare_type(agent_type, partitions)
        _, shared = await session.registry.subscriptions()
        for subscription in shared:
            if getattr(subscription, "agent_type", None) == agent_type:
                await topology.bind(subscription, agent_type, partitions)
        # Only now may a rebalance (perhaps running concurrently) consume its queues.
        session.hosting.hosted[agent_type] = partitions

    async def add_subscription(self, subscription: Subscription) -> None:
        subscription_to_json(subscription)  # refuse kinds the broker cannot share, up front
        await super().add_subscription(subscription)
        session = self._session
        if session is not None and self._state == "running":
            await self._share_subscription(session, subscription)
            await self._reload_subscriptions()

    async def remove_subscription(self, id: str) -> None:
        loop = asyncio.get_running_loop()
        session = await self._until_running(
            loop.time() + self.settings.rpc_timeout, RpcTimeoutError
        )
        local = [s for s in self._subscriptions.subscriptions if s.id == id]
        removed = local[0] if local else None
        if removed is None:
            await self._reload_subscriptions()
            removed = next((s for s in self._all_subscriptions if s.id == id), None)
        if removed is None:
            raise ValueError(f"No subscription has id {id!r}.")
        if local:
            self._subscriptions.remove(id)
        await session.registry.remove_subscription(removed)
        agent_type = getattr(removed, "agent_type", "")
        partitions = await self._partitions_of(session, agent_type)
        if partitions is not None:
            await session.transport.topology.unbind(removed, agent_type, partitions)
        await self._reload_subscriptions()

    async def _share_subscription(self, session: Session, subscription: Subscription) -> None:
        await session.registry.add_subscription(subscription)
        agent_type = getattr(subscription, "agent_type", "")
        partitions = await self._partitions_of(session, agent_type)
        if partitions is not None:  # else the first worker hosting the type binds it
            await session.transport.topology.bind(subscription, agent_type, partitions)

    async def _reload_subscriptions(self) -> None:
        session = self._session
        if session is None:
            return
        version, subscriptions = await session.registry.subscriptions()
        self._all_subscriptions = subscriptions
        self._subscriptions_version = version

    async def _partitions_of(self, session: Session, agent_type: str) -> int | None:
        partitions = self._partitions.get(agent_type)
        if partitions is None:
            partitions = await session.registry.partitions_of(agent_type)
            if partitions is not None:
                self._partitions[agent_type] = partitions
        return partitions

    async def _check_hosted(self, session: Session, recipient: AgentId) -> None:
        """Fail at once for a type no live worker hosts; when the registry cannot be read, or
        has just become readable again (every heartbeat may have expired meanwhile), send
        anyway: the response comes within the caller's timeout, or the timeout ends the wait."""
        view = session.liveness.view
        if view is not None and recipient.type in view.hosted_types:
            return
        try:
            view = await session.liveness.fresh_view()
        except ServiceUnavailableError as e:
            logger.debug("cannot read the registry (%s); sending to %s anyway", e, recipient)
            return
        if recipient.type in view.hosted_types or not session.liveness.trusts_absence():
            return
        raise UndeliverableException(
            f"No live worker hosts agent type {recipient.type!r} in namespace "
            f"{self._names.namespace!r}; cannot send to {recipient}."
        )

    # -- messages -------------------------------------------------------------------------------

    async def send_message(
        self,
        message: Any,
        recipient: AgentId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> Any:
        """Send ``message`` to ``recipient`` and return its handler's result.

        Raises:
            UndeliverableException: no live worker hosts the recipient's type.
            RpcTimeoutError: no response within ``rpc_timeout`` (also while the broker cannot
                be reached); sending again with the same ``message_id`` is safe.
            asyncio.CancelledError: ``cancellation_token`` was cancelled.
            Exception: what the handler raised (its type, or :class:`RemoteHandlerError`).
        """
        deadline = asyncio.get_running_loop().time() + self.settings.rpc_timeout
        session = await self._until_running(deadline, RpcTimeoutError)
        if message_id is None:
            message_id = new_message_id()
        await self._check_hosted(session, recipient)
        token = self._token(cancellation_token)
        if self._interventions.active:
            ctx = MessageContext(sender, None, True, token, message_id)
            message = await self._interventions.on_send(message, ctx, recipient)
        rpc = session.rpc
        # A place among the pending requests first: a call waiting its turn holds no message.
        async with rpc.place(deadline, recipient, message_id):
            type_name, content_type, payload = self._serializers.serialize(message)
            request = Envelope(
                id=message_id,
                source=self._source(sender),
                type=type_name,
                kind=n.KIND_SEND,
                data=payload,
                content_type=content_type,
                recipient=recipient,
                sender=sender,
                path=tuple(str(turn) for turn in calling_path()),
                correlation=message_id,
            )
            with self._telemetry.span("send", recipient, **{"agnext.message_id": message_id}):
                result = await rpc.request(request, token, deadline)
        if self._interventions.active:
            result = await self._interventions.on_response(result, recipient, sender)
        return result

    def _source(self, sender: AgentId | None) -> str:
        return str(sender) if sender is not None else f"agnext/{self.settings.worker_id}"

    async def _control(self, agent: AgentId, operation: str, payload: Any = None) -> Any:
        """A state or metadata request, answered by the agent's worker in the agent's turn."""
        deadline = asyncio.get_running_loop().time() + self.settings.rpc_timeout
        session = await self._until_running(deadline, RpcTimeoutError)
        await self._check_hosted(session, agent)
        message_id = new_message_id()
        request = Envelope(
            id=message_id,
            source=self._source(None),
            type=operation,
            kind=n.KIND_CONTROL,
            data=json.dumps(payload).encode(),
            content_type="application/json",
            recipient=agent,
            path=tuple(str(turn) for turn in calling_path()),
            correlation=message_id,
        )
        async with session.rpc.place(deadline, agent, message_id):
            return await session.rpc.request(request, CancellationToken(), deadline)

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> None:
        """Publish ``message`` to ``topic_id``; returns once the broker confirmed it.

        Raises:
            PublishTimeoutError: not confirmed within ``publish_timeout`` (the broker cannot be
                reached, or refuses it); publishing again with the same ``message_id`` is safe.
        """
        deadline = asyncio.get_running_loop().time() + self.settings.publish_timeout
        session = await self._until_running(deadline, PublishTimeoutError)
        if message_id is None:
            message_id = new_message_id()
        if self._interventions.active:
            ctx = MessageContext(
                sender, topic_id, False, self._token(cancellation_token), message_id
            )
            message = await self._interventions.on_publish(message, ctx)
            if message is DropMessage:
                return
        transport = session.transport
        # A place among the publishes in flight first: a call waiting its turn holds no message.
        async with transport.slot(deadline, f"publishing {message_id} to {topic_id}"):
            type_name, content_type, payload = self._serializers.serialize(message)
            envelope = Envelope(
                id=message_id,
                source=self._source(sender),
                type=type_name,
                kind=n.KIND_PUBLISH,
                data=payload,
                content_type=content_type,
                topic=topic_id,
                sender=sender,
            )  # an event has no call path: nobody waits for it
            with self._telemetry.span("publish", topic_id, **{"agnext.message_id": message_id}):
                key = routing_key(topic_id.source, topic_id.type)
                await transport.publish(envelope, key, deadline, holding=True)

    # -- agents that may live elsewhere --------------------------------------------------------

    async def try_get_underlying_agent_instance(
        self,
        id: AgentId,
        type: type[T] = Agent,  # type: ignore[assignment]
    ) -> T:
        """The instance of an agent this worker hosts (or, after ``stop()`` and until
        ``close()``, one it hosted when it stopped).

        Raises:
            NotAccessibleError: the agent lives on another worker.
        """
        session = self._session
        if self._state == "running" and session is not None:
            if not session.hosting.owns(id):
                raise NotAccessibleError(f"Agent {id} is not hosted by this worker.")
        elif self._directory.get_active(id) is None:
            raise NotAccessibleError(f"Agent {id} is not hosted by this worker.")
        return await super().try_get_underlying_agent_instance(id, type)

    async def agent_metadata(self, agent: AgentId) -> AgentMetadata:
        metadata: AgentMetadata = await self._control(agent, CONTROL_METADATA)
        return metadata

    async def agent_save_state(self, agent: AgentId) -> Mapping[str, Any]:
        """The agent's state, from its own ``save_state()`` in its turn, wherever it lives."""
        state: Mapping[str, Any] = await self._control(agent, CONTROL_SAVE_STATE)
        return state

    async def agent_load_state(self, agent: AgentId, state: Mapping[str, Any]) -> None:
        """Load ``state`` into the agent in its turn (creating it if needed) and save it."""
        await self._control(agent, CONTROL_LOAD_STATE, dict(state))

    async def _create_now(self, agent_id: AgentId) -> None:
        await self._control(agent_id, CONTROL_METADATA)  # its worker creates it, in its turn

    async def save_state(self) -> Mapping[str, Any]:
        """The saved state of every agent of the namespace, keyed ``"type/key"`` (read from
        Redis: what the agents' last handled messages left)."""
        deadline = asyncio.get_running_loop().time() + self.settings.rpc_timeout
        session = await self._until_running(deadline, RpcTimeoutError)
        return await session.store.all_states()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Load each ``"type/key"`` entry into its agent; types no live worker hosts are
        skipped."""
        deadline = asyncio.get_running_loop().time() + self.settings.rpc_timeout
        session = await self._until_running(deadline, RpcTimeoutError)
        for key, agent_state in state.items():
            agent_id = AgentId.from_str(key)
            try:
                await self._check_hosted(session, agent_id)
                await self.agent_load_state(agent_id, agent_state)
            except UndeliverableException:
                continue


def _handled_message_types(agent_class: type[Any] | None) -> list[str]:
    """The wire names of the message types an agent class's handlers take."""
    handles = getattr(agent_class, "_handles_types", None)
    if handles is None:
        return []
    return sorted({s.type_name for _, serializers in handles() for s in serializers})


class _Starting:
    """What ``start()`` returns: ignore it, or await it to wait until connected."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, None]:
        return asyncio.shield(self._task).__await__()


def _log_start_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the broker runtime could not start: %s", task.exception())
