"""The broker runtime: agents on any number of workers sharing one RabbitMQ and one Redis."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

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
from ._lifecycle import Lifecycle
from ._redis import RegistryView, subscription_to_json
from ._replies import CONTROL_LOAD_STATE, CONTROL_METADATA, CONTROL_SAVE_STATE
from ._routing import routing_key
from ._session import Session
from ._settings import BrokerSettings, redact
from ._sharing import Sharing
from ._tasks import CLOSE_BOUND, cancel_and_wait
from ._wire import Envelope

logger = logging.getLogger("agnext_broker")

T = TypeVar("T", bound=Agent)


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
        self._life = Lifecycle()
        self._sharing = Sharing(self.settings.namespace)
        self._starting: asyncio.Task[None] | None = None
        self._message_types: dict[str, list[str]] = {}  # hosted type -> wire names it takes
        self._reloading: asyncio.Task[None] | None = None

    @property
    def hosted_types(self) -> list[str]:
        """The agent types registered on this runtime (it hosts their partitions once started)."""
        return sorted(self._directory.agent_types)

    @property
    def _session(self) -> Session | None:
        """The session while the runtime runs or drains (the tests look at it)."""
        return self._life.session

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> _Starting:
        """Connect and start hosting. Returns at once; ``await runtime.start()`` waits until
        connected (and raises if it cannot connect within ``connect_timeout``). Sends and
        publishes made before that wait for it, within their own bounds."""
        if self._life.state in ("starting", "running", "stopping"):
            raise RuntimeError("The runtime is already started.")
        self._life.start_error = None
        self._life.become("starting")
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
                "amqp": redact(settings.amqp),
                "redis": redact(settings.redis),
            },
        )
        await self._forget_stopped_agents()
        sharing = self._sharing
        session: Session | None = None
        try:
            session = await Session.open(
                settings,
                self._names,
                directory=self._directory,
                serializers=self._serializers,
                telemetry=self._telemetry,
                subscriptions=lambda: sharing.subscriptions,
                reload_subscriptions=sharing.reload,
                on_view=self._on_view,
                on_event_failure=self._event_failed,
            )
            sharing.session = session
            for agent_type in sorted(self._directory.agent_types):
                await self._host_type(agent_type)
            for subscription in self._subscriptions.subscriptions:
                await sharing.share(subscription)
            await sharing.reload()
            await session.begin()
        except BaseException as e:
            self._life.start_error = e
            sharing.session = None
            if session is not None:
                await session.close(asyncio.get_running_loop().time())
            self._life.become("failed")
            raise
        self._life.become("running", session)

    async def _forget_stopped_agents(self) -> None:
        """Instances kept after a stop may be stale once the runtime starts again: the
        partitions may have moved meanwhile."""
        for agent_id in self._directory.active_ids():
            agent = self._directory.deactivate(agent_id)
            if agent is not None:
                await agent.close()

    async def _until_running(
        self, timeout_error: type[AgnextTimeoutError] = RpcTimeoutError, bound: float = 0.0
    ) -> tuple[Session, float]:
        """The session once the runtime runs, and the call's deadline (``loop.time()``):
        ``bound`` seconds from now (default ``rpc_timeout``), which waiting for a start uses
        up too."""
        bound = bound or self.settings.rpc_timeout
        deadline = asyncio.get_running_loop().time() + bound
        return await self._life.until_running(deadline, timeout_error), deadline

    def _on_view(self, view: RegistryView) -> None:
        """After every heartbeat: rebalance, end waits for unhosted types, pick up changed
        subscriptions."""
        session = self._sharing.session
        if session is None:
            return
        session.hosting.on_view(view)
        if session.liveness.trusts_absence():
            session.rpc.fail_unhosted(view.hosted_types, view.asked_at, self._names.namespace)
        if self._sharing.changed(view) and (self._reloading is None or self._reloading.done()):
            # A task of the session: it ends before the session disconnects.
            self._reloading = session.spawn(self._reload_quietly(), "agnext-reload")

    async def _reload_quietly(self) -> None:
        try:
            await self._sharing.reload()
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
        if not self._life.started:
            raise RuntimeError("The runtime is not started.")
        starting, self._starting = self._starting, None
        # A start that goes on after its cancellation ends within its connect_timeout; the
        # session it made is then closed below.
        await cancel_and_wait([starting], self.settings.connect_timeout + CLOSE_BOUND)
        session = self._life.running
        if session is not None:
            self._life.become("stopping", session)
            deadline = asyncio.get_running_loop().time() + self.settings.drain_timeout
            logger.info(
                "draining: finishing the turns in flight, then leaving",
                extra={"worker_id": self.settings.worker_id},
            )
            try:
                await session.close(deadline)
            finally:
                self._sharing.session = None
        self._life.become("stopped")
        error, self._background_exception = self._background_exception, None
        if error is not None:
            raise error

    async def stop_when_idle(self, check_period: float = 0.05) -> None:
        """Stop once nothing is in flight here: no delivery being handled, no message of this
        process waiting for its confirm, no queue this worker consumes holding a message, and
        no RPC of this process waiting for its response."""
        session, _ = await self._until_running()
        while not await session.idle():  # noqa: ASYNC110 - the queues can only be polled
            await asyncio.sleep(check_period)
        await self.stop()

    async def stop_when(self, condition: Callable[[], bool], check_period: float = 0.05) -> None:
        while not condition():  # noqa: ASYNC110 - a user condition can only be polled
            await asyncio.sleep(check_period)
        await self.stop()

    async def close(self) -> None:
        if self._life.started:
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
        session = self._life.running
        if session is not None:
            await self._host_type(agent_type.type)
            # announce the type and consume its partitions now
            await session.hosting.ownership.rebalance(await session.liveness.beat())
        return agent_type

    async def register_agent_instance(self, agent_instance: Agent, agent_id: AgentId) -> AgentId:
        raise NotAccessibleError(
            "register_agent_instance is not supported by the broker runtime: an agent instance "
            "cannot move between workers. Register a factory instead."
        )

    async def _host_type(self, agent_type: str) -> None:
        message_types = self._message_types.get(agent_type, [])
        await self._sharing.host_type(agent_type, self.settings.partitions, message_types)

    async def add_subscription(self, subscription: Subscription) -> None:
        subscription_to_json(subscription)  # refuse kinds the broker cannot share, up front
        await super().add_subscription(subscription)
        if self._life.running is not None:
            await self._sharing.share(subscription)
            await self._sharing.reload()

    async def remove_subscription(self, id: str) -> None:
        await self._until_running()
        local = [s for s in self._subscriptions.subscriptions if s.id == id]
        removed = local[0] if local else None
        if removed is None:
            await self._sharing.reload()
            removed = self._sharing.find(id)
        if removed is None:
            raise ValueError(f"No subscription has id {id!r}.")
        if local:
            self._subscriptions.remove(id)
        await self._sharing.unshare(removed)
        await self._sharing.reload()

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
        session, deadline = await self._until_running()
        if message_id is None:
            message_id = new_message_id()
        await self._sharing.check_hosted(recipient)
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
            with self._telemetry.span("send", recipient, message_id):
                if self._telemetry.enabled:
                    request.traceparent, request.tracestate = self._telemetry.outgoing()
                result = await rpc.request(request, token, deadline)
        if self._interventions.active:
            result = await self._interventions.on_response(result, recipient, sender)
        return result

    def _source(self, sender: AgentId | None) -> str:
        return str(sender) if sender is not None else f"agnext/{self.settings.worker_id}"

    async def _control(self, agent: AgentId, operation: str, payload: Any = None) -> Any:
        """A state or metadata request, answered by the agent's worker in the agent's turn."""
        session, deadline = await self._until_running()
        await self._sharing.check_hosted(agent)
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
        session, deadline = await self._until_running(
            PublishTimeoutError, self.settings.publish_timeout
        )
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
            with self._telemetry.span("publish", topic_id, message_id):
                if self._telemetry.enabled:
                    envelope.traceparent, envelope.tracestate = self._telemetry.outgoing()
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
        session = self._life.running
        if session is not None:
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
        session, _ = await self._until_running()
        return await session.store.all_states()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Load each ``"type/key"`` entry into its agent; types no live worker hosts are
        skipped."""
        await self._until_running()
        for key, agent_state in state.items():
            agent_id = AgentId.from_str(key)
            try:
                await self._sharing.check_hosted(agent_id)
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
