"""What a started broker runtime holds: its connections to RabbitMQ and Redis, and the worker
machinery on them. A runtime that is not started has no session, so nothing can use a
connection that is not there.

Stopping a session drains it (DESIGN "Draining"): every consumer is cancelled at once, the
deliveries not begun go back to their queues, the running turns finish with the transport open
(what they send goes out, their state is saved and acked), each partition's claim is released
as soon as its turns ended, and only then does the worker leave the registry and disconnect, all
under one deadline. Heartbeats keep running until the partitions are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis.asyncio import Redis

from ...base import SerializationRegistry, ServiceUnavailableError, Subscription
from .._agents import AgentDirectory
from .._telemetry import Telemetry
from ._amqp import Transport
from ._health import HealthServer
from ._hosting import Hosting
from ._liveness import Liveness
from ._metrics import Metrics
from ._names import Names
from ._ownership import CANCEL_GRACE_SECONDS
from ._redis import (
    PartitionClaims,
    Registry,
    RegistryView,
    Retention,
    StateStore,
    connect_redis,
)
from ._rpc import RpcClient
from ._settings import BrokerSettings, redact
from ._tasks import CLOSE_BOUND, cancel_and_wait
from ._tls import redis_tls

logger = logging.getLogger("agnext_broker")


class Session:
    def __init__(
        self,
        *,
        settings: BrokerSettings,
        redis: Redis,
        registry: Registry,
        claims: PartitionClaims,
        store: StateStore,
        transport: Transport,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.redis = redis
        self.registry = registry
        self.claims = claims
        self.store = store
        self.transport = transport
        self.rpc: RpcClient
        self.hosting: Hosting
        self.liveness: Liveness
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # spawn(): ended before disconnecting
        self._health: HealthServer | None = None
        self.draining = False

    @classmethod
    async def open(
        cls,
        settings: BrokerSettings,
        names: Names,
        *,
        directory: AgentDirectory,
        serializers: SerializationRegistry,
        telemetry: Telemetry,
        subscriptions: Callable[[], list[Subscription]],
        reload_subscriptions: Callable[[], Awaitable[None]],
        on_view: Callable[[RegistryView], None],
        on_event_failure: Callable[[BaseException], None],
    ) -> Session:
        """Connect to Redis and RabbitMQ, declare the namespace's exchanges and this process's
        reply queue, and put the worker machinery together (nothing is consumed yet).

        Raises:
            AccessRefusedError, ServiceUnavailableError: a server refused or cannot be reached
                within ``connect_timeout``.
        """
        redis_server = redact(settings.redis)
        redis = await connect_redis(settings.redis, settings.connect_timeout, **redis_tls(settings))
        metrics = Metrics()
        transport = Transport(settings, names, metrics.reconnects.labels("rabbitmq").inc)
        try:
            retention = Retention(
                settings.dedup_window, settings.applied_ids_kept, settings.responses_kept
            )
            session = cls(
                settings=settings,
                redis=redis,
                registry=Registry(redis, names, redis_server),
                claims=PartitionClaims(redis, names, settings.worker_id, redis_server),
                store=StateStore(redis, names, retention, redis_server),
                transport=transport,
                metrics=metrics,
            )
            await transport.open()
            session.rpc = RpcClient(transport, serializers, settings, metrics)
            reply_queue = names.reply_queue(settings.worker_id)
            await transport.topology.declare_reply_queue(reply_queue, transport.consume_channel)
            session.rpc.reply_to = reply_queue
            await transport.consumers.consume(
                reply_queue, session.rpc.on_reply, no_ack=True, restore=True
            )
            session.hosting = Hosting(
                settings=settings,
                names=names,
                registry=session.registry,
                claims=session.claims,
                store=session.store,
                transport=transport,
                directory=directory,
                serializers=serializers,
                telemetry=telemetry,
                metrics=metrics,
                subscriptions=subscriptions,
                reload_subscriptions=reload_subscriptions,
                on_event_failure=on_event_failure,
            )
            session.liveness = Liveness(
                session.registry,
                settings,
                lambda: sorted(session.hosting.hosted),
                time.time(),
                on_view,
                metrics.reconnects.labels("redis").inc,
            )
            metrics.gauges(session._gauges)
        except BaseException:
            await transport.close()
            await redis.aclose()
            raise
        return session

    async def begin(self) -> None:
        """The health port (if set), the first heartbeat and rebalance (so a started worker
        consumes at once), then the heartbeat, rebalancing and idle-sweep loops."""
        if self.settings.health_port:
            self._health = HealthServer(
                self.settings.health_host, self.settings.health_port, self.ready, self.metrics
            )
            await self._health.start()
        view = await self.liveness.beat()
        await self.hosting.ownership.rebalance(view)
        self.hosting.ownership.start()
        self.liveness.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="agnext-sweep")

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coroutine`` in a task of the session: :meth:`close` ends it before it
        disconnects, so that it never uses a closed client (a Redis client would open a new
        connection, never closed)."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sweep(self) -> None:
        period = max(1.0, self.settings.idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            try:
                await self.hosting.sweep()
            except ServiceUnavailableError as e:
                logger.debug("idle sweep skipped: %s", e)
            except Exception:
                logger.exception("idle sweep failed")

    def _gauges(self) -> dict[str, object]:
        ownership = self.hosting.ownership
        owned: dict[str, int] = dict.fromkeys(ownership.hosted, 0)
        for (agent_type, _), part in list(ownership.owned.items()):
            if ownership.consuming(part):
                owned[agent_type] = owned.get(agent_type, 0) + 1
        return {
            "in_flight": self.hosting.in_flight,
            "publishes": self.transport.in_flight,
            "owned": owned,
        }

    def ready(self) -> tuple[bool, dict[str, object]]:
        """Whether this worker can do its work now, and what it found (``/readyz``)."""
        ownership = self.hosting.ownership
        waiting = sorted(
            f"{part.agent_type}/{part.index}"
            for part in list(ownership.owned.values())
            if part.releasing is None and not ownership.consuming(part)
        )
        details: dict[str, object] = {
            "worker_id": self.settings.worker_id,
            "rabbitmq": "connected" if self.transport.connected else "not connected",
            "redis": "reachable" if self.liveness.healthy else "not reachable",
            "partitions": self._gauges()["owned"],
            "not consumed yet": waiting,
            "draining": self.draining,
        }
        ready = (
            self.transport.connected and self.liveness.healthy and not waiting and not self.draining
        )
        return ready, details

    async def idle(self) -> bool:
        """Whether nothing is in flight here: no delivery being handled, no message waiting
        for its confirm, no queue this worker consumes holding a message, no RPC of this
        process waiting for its response."""
        hosting, transport, rpc = self.hosting, self.transport, self.rpc
        stats = hosting.ownership.stats

        def quiet() -> bool:
            return not rpc.waiting and hosting.in_flight == 0 and transport.in_flight == 0

        # A delivery could come, be handled and publish to a queue already looked at while the
        # queues are asked one by one: then something was received in between.
        received = stats.received
        if not quiet() or not await hosting.ownership.queues_empty():
            return False
        return quiet() and stats.received == received

    async def close(self, deadline: float) -> None:
        """Drain (until ``deadline``), leave the registry, and disconnect. Every step is bounded:
        the drain by ``deadline`` (and the grace its cancelled handlers get), each step after it
        by ``CLOSE_BOUND``."""
        await cancel_and_wait([self._sweeper])
        # Tell the others at once that this worker takes no partition any more, so that they
        # claim each one as soon as it is released here.
        self.draining = True
        self.liveness.draining = True
        with contextlib.suppress(ServiceUnavailableError, TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self.liveness.beat()
        try:
            async with asyncio.timeout_at(deadline + CANCEL_GRACE_SECONDS + CLOSE_BOUND):
                await self.hosting.drain(deadline)
        except TimeoutError:
            logger.warning("draining did not end in time; disconnecting all the same")
        finally:
            await self.liveness.stop()  # only now: the claims are released
            await cancel_and_wait(self._tasks)
            with contextlib.suppress(ServiceUnavailableError, TimeoutError):
                async with asyncio.timeout(CLOSE_BOUND):
                    await self.registry.leave(self.settings.worker_id)
            self.rpc.fail_all(
                ServiceUnavailableError("the runtime stopped before the response arrived")
            )
            await self.transport.close()
            await self.store.close()
            try:
                async with asyncio.timeout(CLOSE_BOUND):
                    await self.redis.aclose()
            except TimeoutError:
                logger.warning("closing the Redis client took longer than %g s", CLOSE_BOUND)
            if self._health is not None:
                await self._health.close()
