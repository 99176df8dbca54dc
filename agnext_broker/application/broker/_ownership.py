"""Which partitions this worker holds and consumes, and how it hands them over.

After every heartbeat the worker compares the plan (``_assignment.plan``: balanced, sticky) with
what it holds:

- a partition the plan gives it is claimed in Redis (a free one, or one whose holder's
  heartbeat expired), then consumed, but only once its queue has no consumer: a worker whose
  heartbeat expired may still be alive (stalled, cut off from Redis) and consuming. If that
  worker turns out to be alive, the claim goes back to it. A partition counts as consumed only
  once the broker confirmed the consumer; a consume that failed, or a consumer lost with its
  channel (a reconnect), is tried again on the next tick, and only once the runtime can publish;
- a partition the plan gives to another worker is released: its consumer is cancelled, the
  deliveries not yet begun go back to the queue (in delivery order), the turns already running
  finish, and only then is the claim given up, so the next holder never overlaps them.

Draining a stopping worker is the same release for every partition at once, under one deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiormq.abc import DeliveredMessage

from ...base import AgentId, ServiceUnavailableError
from ._amqp import Acknowledgements, Transport
from ._assignment import plan
from ._names import Names
from ._redis import PartitionClaims, RegistryView
from ._routing import partition_of
from ._settings import BrokerSettings
from ._tasks import cancel_and_wait

logger = logging.getLogger("agnext_broker")

# How long handlers cancelled at the drain deadline get to end before their deliveries are
# given back without them.
CANCEL_GRACE_SECONDS = 1.0


@dataclass(eq=False)
class Delivery:
    """One message received from a partition queue, until it is settled."""

    tag: int
    acks: Acknowledgements
    task: asyncio.Task[Any]
    started: bool = False  # a turn of it began: it finishes (or is cancelled), never requeued


@dataclass(eq=False)
class Partition:
    agent_type: str
    index: int
    queue: str
    taken_from: str = ""  # the expired holder it was claimed from (it may still be consuming)
    consumer_tag: str | None = None
    accepting: bool = True  # False once its consumer is being cancelled
    consumer_gone: asyncio.Event = field(default_factory=asyncio.Event)  # cancel confirmed
    deliveries: dict[Delivery, None] = field(default_factory=dict)  # in delivery order
    joining: asyncio.Lock = field(default_factory=asyncio.Lock)
    requeueing: asyncio.Lock = field(default_factory=asyncio.Lock)
    releasing: asyncio.Task[None] | None = None
    waiting_noted: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.agent_type, self.index)


@dataclass
class DeliveryStats:
    """Counts of this worker's deliveries, for its operators (and the fault tests)."""

    received: int = 0
    redelivered: int = 0  # the broker had delivered them before (to here or elsewhere)
    highest_delivery_count: int = 0  # the largest x-delivery-count seen (quorum queues)


Handle = Callable[[Partition, DeliveredMessage, Delivery], Awaitable[None]]
ReleaseAgents = Callable[[Partition, bool], Awaitable[None]]


class Ownership:
    """The partitions this worker holds, each consumed once the broker confirmed it.

    Args:
        handle: handles one delivery of a partition (runs in the delivery's task).
        release_agents: ``(partition, keep)``: deactivates the agents of a released partition,
            or with ``keep`` (the runtime stops) forgets them but keeps their instances.
    """

    def __init__(
        self,
        *,
        settings: BrokerSettings,
        names: Names,
        claims: PartitionClaims,
        transport: Transport,
        handle: Handle,
        release_agents: ReleaseAgents,
    ) -> None:
        self._settings = settings
        self._names = names
        self._claims = claims
        self._transport = transport
        self._handle = handle
        self._release_agents = release_agents
        self.hosted: dict[str, int] = {}  # agent type -> partition count
        self.owned: dict[tuple[str, int], Partition] = {}
        self._stopping = False
        self._wake = asyncio.Event()
        self._view: RegistryView | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._failing = False
        self._rebalancing = asyncio.Lock()  # one rebalance at a time (loop, registration)
        self.stats = DeliveryStats()

    # -- what this worker holds -----------------------------------------------------------------

    def partition_of(self, agent_id: AgentId) -> int:
        return partition_of(agent_id.key, self.hosted.get(agent_id.type, 1))

    def consuming(self, part: Partition) -> bool:
        tag = part.consumer_tag
        return tag is not None and self._transport.consumers.registered(tag)

    def owns(self, agent_id: AgentId) -> bool:
        part = self.owned.get((agent_id.type, self.partition_of(agent_id)))
        return part is not None and part.releasing is None and self.consuming(part)

    @property
    def in_flight(self) -> int:
        return sum(len(part.deliveries) for part in self.owned.values())

    async def queues_empty(self) -> bool:
        """Whether no partition this worker consumes has a message waiting or on its way here.

        Asked on the consuming channel: its answer comes after every delivery the broker sent
        before it, so a message delivered but not yet seen counts as in flight by then."""
        channel = self._transport.consume_channel
        for part in list(self.owned.values()):
            counts = await self._transport.topology.counts(part.queue, channel)
            if counts.messages:
                return False
        await asyncio.sleep(0)  # the tasks of deliveries that arrived before the answer start
        return True

    # -- the loop -------------------------------------------------------------------------------

    def on_view(self, view: RegistryView) -> None:
        """A heartbeat brought a new view of the live workers: rebalance (in the loop task)."""
        self._view = view
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="agnext-ownership")

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            view = self._view
            if view is None or self._stopping:
                continue
            try:
                await self.rebalance(view)
                if self._failing:
                    logger.info("rebalancing works again")
                    self._failing = False
            except ServiceUnavailableError as e:
                if not self._failing:
                    logger.warning("rebalancing failed, trying again every heartbeat: %s", e)
                    self._failing = True
            except Exception:
                logger.exception("rebalancing failed")

    async def rebalance(self, view: RegistryView) -> None:
        """Claim and consume the partitions the plan gives this worker; release the others."""
        async with self._rebalancing:
            await self._rebalance(view)

    async def _rebalance(self, view: RegistryView) -> None:
        me = self._settings.worker_id
        live = view.worker_ids
        for agent_type, partitions in list(self.hosted.items()):
            hosts = view.hosts(agent_type)
            if me not in hosts:
                continue  # this worker's own heartbeat is not in the view yet: change nothing
            holders = await self._claims.holders(agent_type, partitions)
            live_holders = [h if h in live else None for h in holders]
            planned = plan(agent_type, hosts, live_holders)
            for index in range(partitions):
                if self._stopping:
                    return
                part = self.owned.get((agent_type, index))
                if part is not None and part.releasing is not None:
                    continue
                if planned[index] != me:
                    if part is not None:
                        self._start_release(part, "another worker takes it over")
                    continue
                await self._keep(agent_type, index, part, holders[index], live)

    async def _keep(
        self,
        agent_type: str,
        index: int,
        part: Partition | None,
        holder: str | None,
        live: frozenset[str],
    ) -> None:
        me = self._settings.worker_id
        if part is None:
            claim = await self._claims.claim(agent_type, index)
            if not claim.held:
                return  # its live holder hands it over once its turns ended
            part = Partition(agent_type, index, self._names.partition_queue(agent_type, index))
            part.taken_from = claim.other
            self.owned[part.key] = part
            if claim.other:
                logger.warning(
                    "took over %s partition %d from worker %s, whose heartbeat expired",
                    agent_type,
                    index,
                    claim.other,
                    extra={"agent_type": agent_type, "partition": index, "from": claim.other},
                )
        elif holder != me:
            # The claim was taken while this worker seemed dead (or Redis lost it). A worker
            # that took it waits for the queue to be free: if this worker still consumes it,
            # the partition stays here.
            if not self.consuming(part):
                self._start_release(part, f"worker {holder} holds it now", give_up_claim=False)
                return
            regained = (
                (await self._claims.claim(agent_type, index)).held
                if holder is None
                else await self._claims.take_back(agent_type, index, holder)
            )
            if regained:
                logger.warning(
                    "%s partition %d was claimed by %s while this worker seemed dead; this "
                    "worker still consumes it and keeps it",
                    agent_type,
                    index,
                    holder,
                )
            return
        if not self.consuming(part):
            await self._consume(part, live)

    async def _consume(self, part: Partition, live: frozenset[str]) -> None:
        if not self._transport.publishable:
            return  # consume only what can be answered: once publishing works again
        counts = await self._transport.topology.counts(part.queue)
        if counts.consumers:
            previous = part.taken_from
            if previous and previous in live:
                # The worker it was taken from is alive and still consumes it: give it back.
                if await self._claims.hand_back(part.agent_type, part.index, previous):
                    del self.owned[part.key]
                    logger.warning(
                        "gave %s partition %d back to worker %s, which is alive and consumes it",
                        part.agent_type,
                        part.index,
                        previous,
                    )
            elif not part.waiting_noted:
                part.waiting_noted = True
                logger.warning(
                    "%s partition %d is claimed here but %s still has a consumer; consuming once "
                    "it has none",
                    part.agent_type,
                    part.index,
                    part.queue,
                )
            return
        part.accepting = True
        part.consumer_gone.clear()
        try:
            part.consumer_tag = await self._transport.consumers.consume(
                part.queue,
                partial(self._on_delivery, part),
                exclusive=self._settings.queue_type == "classic",
                answer_within=self._settings.connect_timeout,
            )
        except ServiceUnavailableError as e:
            # Not owned until consumed: give the claim up, the plan brings it back next tick.
            logger.warning("could not consume %s: %s; trying again", part.queue, e)
            del self.owned[part.key]
            with contextlib.suppress(ServiceUnavailableError):
                await self._claims.release(part.agent_type, part.index)
            return
        part.taken_from = ""
        logger.info(
            "consuming %s partition %d",
            part.agent_type,
            part.index,
            extra={"agent_type": part.agent_type, "partition": part.index},
        )

    # -- deliveries -----------------------------------------------------------------------------

    async def _on_delivery(self, part: Partition, message: DeliveredMessage) -> None:
        # This callback already runs in a task of its own (one per delivery): no need for another.
        task = asyncio.current_task()
        assert task is not None
        tag = message.delivery_tag
        assert tag is not None  # deliveries to a consumer always have one
        acks = self._transport.consumers.acknowledgements(message)
        acks.received(tag)  # before any pause: in delivery order
        delivery = Delivery(tag, acks, task)
        part.deliveries[delivery] = None
        self._count(message)
        try:
            if part.accepting:
                await self._handle(part, message, delivery)
            else:
                # Sent before the consumer's cancel went through. Given back only once the
                # broker confirmed the cancel: until then it would come straight back here.
                await part.consumer_gone.wait()
                await self._requeue_waiting(part)
        finally:
            part.deliveries.pop(delivery, None)
            if not acks.settled(tag):  # cancelled, or failed: back to the queue
                try:
                    await acks.requeue(tag)
                except Exception as e:  # the channel is gone: the broker requeues it anyway
                    logger.debug("could not give back delivery %d: %s", tag, e)

    def _count(self, message: DeliveredMessage) -> None:
        stats = self.stats
        stats.received += 1
        if message.redelivered:
            stats.redelivered += 1
            headers = message.header.properties.headers or {}
            count = headers.get("x-delivery-count")
            if isinstance(count, int) and count > stats.highest_delivery_count:
                stats.highest_delivery_count = count

    async def _requeue_waiting(self, part: Partition) -> None:
        """Give the deliveries not begun back to the queue, in the order they came (the broker
        delivers them again in that order, ahead of later messages), and end their tasks."""
        async with part.requeueing:
            waiting = [d for d in part.deliveries if not d.started and not d.acks.settled(d.tag)]
            for delivery in waiting:
                try:
                    await delivery.acks.requeue(delivery.tag)
                except Exception as e:
                    logger.debug("could not give back delivery %d: %s", delivery.tag, e)
            current = asyncio.current_task()
            for delivery in waiting:
                if delivery.task is not current:
                    delivery.task.cancel()

    # -- releasing ------------------------------------------------------------------------------

    def _start_release(self, part: Partition, why: str, *, give_up_claim: bool = True) -> None:
        logger.info("releasing %s partition %d: %s", part.agent_type, part.index, why)
        deadline = asyncio.get_running_loop().time() + self._settings.drain_timeout
        part.releasing = asyncio.create_task(
            self._release(part, deadline, keep_agents=False, give_up_claim=give_up_claim)
        )

    async def _release(
        self, part: Partition, deadline: float, *, keep_agents: bool, give_up_claim: bool = True
    ) -> None:
        """Stop consuming, give back what was not begun, let the running turns finish (until
        ``deadline``), let go of the agents, and only then give up the claim."""
        try:
            await self._stop_consuming([part], deadline)
            await self._requeue_waiting(part)
            await self._finish(part, deadline)
            await self._release_agents(part, keep_agents)
            if give_up_claim:
                await self._give_up_claim(part, deadline)
            logger.info("released %s partition %d", part.agent_type, part.index)
        finally:
            if self.owned.get(part.key) is part:
                del self.owned[part.key]

    async def _stop_consuming(self, parts: list[Partition], deadline: float) -> None:
        tags = []
        for part in parts:
            part.accepting = False
            if part.consumer_tag is not None:
                tags.append(part.consumer_tag)
                part.consumer_tag = None
        left = max(deadline - asyncio.get_running_loop().time(), 0.1)
        await self._transport.consumers.cancel_all(tags, answer_within=left)
        for part in parts:
            part.consumer_gone.set()

    async def _finish(self, part: Partition, deadline: float) -> None:
        """Wait for the partition's deliveries until ``deadline``; then cancel them (their
        messages go back to the queue)."""
        tasks = {d.task for d in part.deliveries}
        if not tasks:
            return
        left = deadline - asyncio.get_running_loop().time()
        _, late = await asyncio.wait(tasks, timeout=max(left, 0))
        if not late:
            return
        logger.warning(
            "%d handler(s) of %s partition %d did not finish in time; cancelled, their messages "
            "go back to the queue",
            len(late),
            part.agent_type,
            part.index,
        )
        stuck = await cancel_and_wait(late, CANCEL_GRACE_SECONDS)
        for delivery in [d for d in part.deliveries if d.task in stuck]:
            logger.error("a handler of %s ignored its cancellation", part.queue)
            with contextlib.suppress(Exception):
                await delivery.acks.requeue(delivery.tag)

    async def _give_up_claim(self, part: Partition, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._claims.release(part.agent_type, part.index)
                return
            except ServiceUnavailableError as e:
                if loop.time() >= deadline and self._stopping:
                    # The claim lapses with this worker's heartbeat, which stops soon.
                    logger.warning("could not give up %s: %s", part.queue, e)
                    return
                await asyncio.sleep(0.5)

    async def drain(self, deadline: float) -> None:
        """Release every partition under one ``deadline``: all consumers are cancelled first,
        then each partition is given up as soon as its own turns ended."""
        self._stopping = True
        self._wake.set()
        await cancel_and_wait([self._loop_task])
        self._loop_task = None
        parts = list(self.owned.values())
        releasing = [p.releasing for p in parts if p.releasing is not None]
        fresh = [p for p in parts if p.releasing is None]
        await self._stop_consuming(fresh, deadline)
        for part in fresh:
            await self._requeue_waiting(part)
        await asyncio.gather(
            *releasing,
            *(self._release(p, deadline, keep_agents=True) for p in fresh),
            return_exceptions=True,
        )
        self.owned.clear()
