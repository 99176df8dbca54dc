"""The broker runtime: agents on any number of workers sharing one RabbitMQ and one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry.trace import TracerProvider
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ...base import (
    Agent,
    AgentId,
    AgentMetadata,
    AgentType,
    CancellationToken,
    DropMessage,
    InterventionHandler,
    MessageContext,
    NotAccessibleError,
    Subscription,
    TopicId,
    UndeliverableException,
)
from .._runtime_core import RuntimeCore, calling_path, new_message_id
from . import _names as n
from ._hosting import Hosting
from ._registry import Registry, subscription_to_json
from ._replies import CONTROL_LOAD_STATE, CONTROL_METADATA, CONTROL_SAVE_STATE
from ._routing import routing_key
from ._rpc import RpcClient
from ._settings import BrokerSettings, redact
from ._state_store import StateStore
from ._transport import Transport
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
        self._transport = Transport(self.settings, self._names)
        self._redis: Redis | None = None
        self._registry: Registry
        self._hosting: Hosting | None = None
        self._started: asyncio.Task[None] | None = None
        self._running = False
        self._rpc = RpcClient(self._transport, self._serializers, self.settings)
        self._partitions: dict[str, int] = {}  # any agent type -> partition count (cache)
        self._hosted_cache: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._all_subscriptions: list[Subscription] = []
        self._started_at = time.time()
        self._tick_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> _Starting:
        """Connect and start hosting. Returns at once; ``await runtime.start()`` waits until
        connected (and raises if it cannot connect). Sends made before that wait too."""
        if self._started is not None:
            raise RuntimeError("The runtime is already started.")
        self._started = asyncio.get_running_loop().create_task(self._start())
        self._started.add_done_callback(_log_start_failure)
        return _Starting(self._started)

    async def _until_started(self) -> None:
        if self._started is None:
            raise RuntimeError("Call runtime.start() before sending or publishing.")
        await asyncio.shield(self._started)

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
        self._redis = await _connect_redis(settings.redis_url)
        self._registry = Registry(self._redis, self._names)
        await self._transport.open()
        reply_queue = await self._transport.consume_channel.declare_queue(
            self._names.reply_queue(settings.worker_id), exclusive=True, auto_delete=True
        )
        self._rpc.reply_to = reply_queue.name
        await self._transport.consumers.consume(reply_queue.name, self._rpc.on_reply, no_ack=True)
        self._hosting = Hosting(
            settings=settings,
            names=self._names,
            redis=self._redis,
            registry=self._registry,
            store=StateStore(self._redis, self._names),
            transport=self._transport,
            directory=self._directory,
            serializers=self._serializers,
            telemetry=self._telemetry,
            subscriptions=lambda: self._all_subscriptions,
            reload_subscriptions=self._reload_subscriptions,
            on_event_failure=self._event_failed,
        )
        for agent_type in sorted(self._directory.agent_types):
            await self._host_type(agent_type)
        for subscription in self._subscriptions.subscriptions:
            await self._share_subscription(subscription)
        await self._reload_subscriptions()
        await self._tick()
        self._running = True
        self._stopping = asyncio.Event()
        self._loops = [
            asyncio.create_task(self._every(settings.heartbeat_interval, self._tick)),
            asyncio.create_task(self._every(max(1.0, settings.idle_timeout / 4), self._sweep)),
        ]

    async def _every(self, period: float, step: Callable[[], Awaitable[None]]) -> None:
        # Runs until the runtime stops. The stop event, and not only the task's cancellation,
        # ends it: a cancellation that arrives as a client library's own timeout fires becomes
        # that timeout's error (asyncio.timeout), is caught below, and is lost.
        stopping = self._stopping
        while not stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), period)
            if stopping.is_set():
                return
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.warning("%s failed: %s", getattr(step, "__name__", step), e)

    async def _tick(self) -> None:
        """Heartbeat, then take the fair share of partitions among the live workers."""
        async with self._tick_lock:
            await self._heartbeat_and_rebalance()

    async def _heartbeat_and_rebalance(self) -> None:
        assert self._hosting is not None
        hosted = sorted(self._hosting.partitions)
        await self._registry.heartbeat(
            self.settings.worker_id, hosted, self._started_at, self.settings.worker_expiry
        )
        seen_at = time.monotonic()
        workers = await self._registry.live_workers()
        hosted_anywhere = frozenset(t for w in workers for t in w.agent_types)
        self._hosted_cache = (seen_at, hosted_anywhere)
        self._rpc.fail_unhosted(hosted_anywhere, seen_at, self._names.namespace)
        if hosted:
            await self._hosting.rebalance({w.worker_id: w.agent_types for w in workers})

    async def _sweep(self) -> None:
        if self._hosting is not None:
            await self._hosting.sweep()

    async def stop(self) -> None:
        """Stop consuming, finish the messages in flight, leave the registry and disconnect.

        Raises:
            Exception: with ``ignore_unhandled_exceptions=False``, the first exception an event
                handler raised (its message went to the dead-letter queue).
        """
        if self._started is None:
            raise RuntimeError("The runtime is not started.")
        starting, self._started = self._started, None
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        self._stopping.set()  # the loops end after their step even if a cancellation is lost
        for loop in self._loops:
            loop.cancel()
        if self._loops:
            await asyncio.wait(self._loops)
        self._loops = []
        if self._hosting is not None:
            await self._hosting.release_all()
            with contextlib.suppress(Exception):
                await self._registry.leave(self.settings.worker_id)
        self._rpc.fail_all(ConnectionError("the runtime stopped before the response"))
        await self._transport.close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        self._running = False
        error, self._background_exception = self._background_exception, None
        if error is not None:
            raise error

    async def stop_when_idle(self, check_period: float = 0.05) -> None:
        """Stop once nothing is in flight here, the owned partition queues are empty and no RPC
        of this process waits for a response."""
        await self._until_started()
        assert self._hosting is not None
        while True:
            if (
                not self._rpc.waiting
                and self._hosting.in_flight == 0
                and await self._hosting.queues_empty()
                and self._hosting.in_flight == 0
            ):
                break
            await asyncio.sleep(check_period)
        await self.stop()

    async def stop_when(self, condition: Callable[[], bool], check_period: float = 0.05) -> None:
        while not condition():  # noqa: ASYNC110 - a user condition can only be polled
            await asyncio.sleep(check_period)
        await self.stop()

    async def close(self) -> None:
        if self._started is not None:
            await self.stop()
        await self._close_agents()

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
        if self._running:
            await self._host_type(agent_type.type)
            await self._tick()  # announce the type and consume its partitions now
        return agent_type

    async def register_agent_instance(self, agent_instance: Agent, agent_id: AgentId) -> AgentId:
        raise NotAccessibleError(
            "register_agent_instance is not supported by the broker runtime: an agent instance "
            "cannot move between workers. Register a factory instead."
        )

    async def _host_type(self, agent_type: str) -> None:
        assert self._hosting is not None
        partitions = await self._registry.register_type(
            agent_type, self.settings.partitions, self._message_type_names()
        )
        self._partitions[agent_type] = partitions
        await self._transport.topology.declare_type(agent_type, partitions)
        for subscription in await self._registry.subscriptions():
            if getattr(subscription, "agent_type", None) == agent_type:
                await self._transport.topology.bind(subscription, agent_type, partitions)
        # Only now may a rebalance (perhaps running concurrently) consume its queues.
        self._hosting.partitions[agent_type] = partitions

    def _message_type_names(self) -> list[str]:
        return sorted({name for name, _ in self._serializers._by_name})

    async def add_subscription(self, subscription: Subscription) -> None:
        subscription_to_json(subscription)  # refuse kinds the broker cannot share, up front
        await super().add_subscription(subscription)
        if self._running:
            await self._share_subscription(subscription)
            await self._reload_subscriptions()

    async def remove_subscription(self, id: str) -> None:
        await self._until_started()
        local = [s for s in self._subscriptions.subscriptions if s.id == id]
        removed = local[0] if local else None
        if removed is None:
            await self._reload_subscriptions()
            removed = next((s for s in self._all_subscriptions if s.id == id), None)
        if removed is None:
            raise ValueError(f"No subscription has id {id!r}.")
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(id)
        await self._registry.remove_subscription(removed)
        agent_type = getattr(removed, "agent_type", "")
        partitions = await self._partitions_of(agent_type)
        if partitions is not None:
            await self._transport.topology.unbind(removed, agent_type, partitions)
        await self._reload_subscriptions()

    async def _share_subscription(self, subscription: Subscription) -> None:
        await self._registry.add_subscription(subscription)
        agent_type = getattr(subscription, "agent_type", "")
        partitions = await self._partitions_of(agent_type)
        if partitions is not None:  # else the first worker hosting the type binds it
            await self._transport.topology.bind(subscription, agent_type, partitions)

    async def _reload_subscriptions(self) -> None:
        self._all_subscriptions = await self._registry.subscriptions()

    async def _partitions_of(self, agent_type: str) -> int | None:
        partitions = self._partitions.get(agent_type)
        if partitions is None:
            partitions = await self._registry.partitions_of(agent_type)
            if partitions is not None:
                self._partitions[agent_type] = partitions
        return partitions

    async def _is_hosted(self, agent_type: str) -> bool:
        refreshed, hosted = self._hosted_cache
        if agent_type in hosted and time.monotonic() - refreshed < self.settings.worker_expiry:
            return True
        workers = await self._registry.live_workers()
        hosted = frozenset(t for w in workers for t in w.agent_types)
        self._hosted_cache = (time.monotonic(), hosted)
        return agent_type in hosted

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
        await self._until_started()
        if message_id is None:
            message_id = new_message_id()
        await self._check_hosted(recipient)
        token = self._token(cancellation_token)
        if self._interventions.active:
            ctx = MessageContext(sender, None, True, token, message_id)
            message = await self._interventions.on_send(message, ctx, recipient)
        type_name, content_type, payload = self._serializers.serialize(message)
        with self._telemetry.span("send", recipient, **{"agnext.message_id": message_id}):
            result = await self._rpc.request(
                Envelope(
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
                ),
                token,
            )
        if self._interventions.active:
            result = await self._interventions.on_response(result, recipient, sender)
        return result

    async def _check_hosted(self, recipient: AgentId) -> None:
        if not await self._is_hosted(recipient.type):
            raise UndeliverableException(
                f"No live worker hosts agent type {recipient.type!r} in namespace "
                f"{self._names.namespace!r}; cannot send to {recipient}."
            )

    def _source(self, sender: AgentId | None) -> str:
        return str(sender) if sender is not None else f"agnext/{self.settings.worker_id}"

    async def _control(self, agent: AgentId, operation: str, payload: Any = None) -> Any:
        """A state or metadata request, answered by the agent's worker in the agent's turn."""
        await self._until_started()
        await self._check_hosted(agent)
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
        return await self._rpc.request(request, CancellationToken())

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> None:
        await self._until_started()
        if message_id is None:
            message_id = new_message_id()
        if self._interventions.active:
            ctx = MessageContext(
                sender, topic_id, False, self._token(cancellation_token), message_id
            )
            message = await self._interventions.on_publish(message, ctx)
            if message is DropMessage:
                return
        type_name, content_type, payload = self._serializers.serialize(message)
        envelope = Envelope(
            id=message_id,
            source=str(sender) if sender is not None else f"agnext/{self.settings.worker_id}",
            type=type_name,
            kind=n.KIND_PUBLISH,
            data=payload,
            content_type=content_type,
            topic=topic_id,
            sender=sender,
        )  # an event has no call path: nobody waits for it
        with self._telemetry.span("publish", topic_id, **{"agnext.message_id": message_id}):
            await self._transport.publish(envelope, routing_key(topic_id.source, topic_id.type))

    # -- agents that may live elsewhere --------------------------------------------------------

    async def try_get_underlying_agent_instance(
        self,
        id: AgentId,
        type: type[T] = Agent,  # type: ignore[assignment]
    ) -> T:
        if self._hosting is None or not self._hosting.owns(id):
            raise NotAccessibleError(f"Agent {id} is not hosted by this worker.")
        return await super().try_get_underlying_agent_instance(id, type)

    async def agent_metadata(self, agent: AgentId) -> AgentMetadata:
        metadata: AgentMetadata = await self._control(agent, CONTROL_METADATA)
        return metadata

    async def agent_save_state(self, agent: AgentId) -> Mapping[str, Any]:
        """The agent's state, from its own ``save_state()`` in its turn, wherever it lives."""
        state: Mapping[str, Any] = await self._control(agent, CONTROL_SAVE_STATE)
        return state

    def _require_redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("The runtime is not started.")
        return self._redis

    async def agent_load_state(self, agent: AgentId, state: Mapping[str, Any]) -> None:
        """Load ``state`` into the agent in its turn (creating it if needed) and save it."""
        await self._control(agent, CONTROL_LOAD_STATE, dict(state))

    async def _create_now(self, agent_id: AgentId) -> None:
        await self._control(agent_id, CONTROL_METADATA)  # its worker creates it, in its turn

    async def save_state(self) -> Mapping[str, Any]:
        """The saved state of every agent of the namespace, keyed ``"type/key"`` (read from
        Redis: what the agents' last handled messages left)."""
        await self._until_started()
        return await StateStore(self._require_redis(), self._names).all_states()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Load each ``"type/key"`` entry into its agent; types no live worker hosts are
        skipped."""
        for key, agent_state in state.items():
            agent_id = AgentId.from_str(key)
            if await self._is_hosted(agent_id.type):
                await self.agent_load_state(agent_id, agent_state)


class _Starting:
    """What ``start()`` returns: ignore it, or await it to wait until connected."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def __await__(self) -> Generator[Any, None, None]:
        return asyncio.shield(self._task).__await__()


def _log_start_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the broker runtime could not start: %s", task.exception())


async def _connect_redis(url: str, timeout: float = 30.0) -> Redis:
    redis = Redis.from_url(url, decode_responses=True)
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception_type((ConnectionError, OSError, RedisConnectionError)),
            reraise=True,
        ):
            with attempt:
                await redis.ping()
    except Exception as e:
        await redis.aclose()
        raise ConnectionError(
            f"cannot connect to Redis at {redact(url)}: {e}; check AGNEXT_REDIS_URL and that "
            "Redis is running"
        ) from e
    return redis
