"""Settling the deliveries of one AMQP channel: acks of runs of finished deliveries go in one
frame, and a delivery given back goes before any ack that covers it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiormq

logger = logging.getLogger("agnext_broker")

# How long the ack sender waits after the first finished delivery, so that those finishing
# meanwhile go in the same frame: one write and one frame for the broker instead of several.
ACK_BATCH_SECONDS = 0.002


class Acknowledgements:
    """Settles the deliveries of one AMQP channel, acking many with one frame where it can.

    Deliveries are registered as they arrive (in delivery tag order: aiormq starts one task per
    delivery, in order, and each registers before its first pause). Acks are sent by one task,
    in order, ``ACK_BATCH_SECONDS`` after the first of them finished: the run of finished
    deliveries at the front goes in one ``multiple`` ack (one frame for the consumer, one settle
    per queue for the broker); a delivery that finishes while an earlier one is still being
    handled is acked alone, so a slow handler never holds back the acks of the others. A
    delivery given back (nack) is settled before any ack that covers its tag is sent.
    """

    def __init__(
        self, channel: aiormq.abc.AbstractChannel, on_requeue: Callable[[], None] = lambda: None
    ) -> None:
        self.channel = channel
        self._on_requeue = on_requeue
        self._pending: dict[int, bool] = {}  # delivery tag -> finished (insertion = tag order)
        self._finished_out_of_order = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._sender = asyncio.ensure_future(self._send())

    def received(self, tag: int) -> None:
        self._pending[tag] = False

    def ack(self, tag: int) -> None:
        if self._pending.get(tag) is False:
            self._pending[tag] = True
            if next(iter(self._pending)) != tag:
                self._finished_out_of_order += 1
            self._wakeup.set()

    async def requeue(self, tag: int) -> None:
        """Give the delivery back to its queue now."""
        if self._pending.get(tag) is False:
            try:
                await self.channel.basic_nack(tag, requeue=True, wait=False)
                self._on_requeue()
            finally:
                # Only once the nack is queued: no ack covering this tag may go before it.
                self._pending.pop(tag, None)
                self._wakeup.set()

    def settled(self, tag: int) -> bool:
        """Acked (or about to be) or given back."""
        return self._pending.get(tag) is not False

    async def close(self, grace: float = 5.0) -> None:
        """Send the acks of the deliveries finished by now, and stop."""
        self._closing = True
        self._wakeup.set()
        _, late = await asyncio.wait([self._sender], timeout=grace)
        if late:  # the connection is stuck: the broker delivers them again
            self.stop()

    def stop(self) -> None:
        """Stop at once (on a closed channel: the broker delivers the unacked ones again)."""
        self._sender.cancel()

    def _take(self) -> list[tuple[int, bool]]:
        """The ack frames to send now: (tag, multiple)."""
        frames: list[tuple[int, bool]] = []
        front: list[int] = []
        for tag, finished in self._pending.items():
            if not finished:
                break
            front.append(tag)
        for tag in front:
            del self._pending[tag]
        if front:
            frames.append((front[-1], len(front) > 1))
        if self._finished_out_of_order:
            alone = [tag for tag, finished in self._pending.items() if finished]
            for tag in alone:
                del self._pending[tag]
                frames.append((tag, False))
            self._finished_out_of_order = 0
        return frames

    async def _send_finished(self) -> None:
        for tag, multiple in self._take():
            await self.channel.basic_ack(tag, multiple=multiple, wait=False)

    async def _send(self) -> None:
        while True:
            await self._wakeup.wait()
            closing = self._closing  # then every delivery has finished: this send is the last
            if not closing:
                await asyncio.sleep(ACK_BATCH_SECONDS)
            self._wakeup.clear()
            try:
                await self._send_finished()
            except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as e:
                # The channel closed: the broker delivers its unacknowledged messages again.
                logger.debug("acks on a closed channel dropped: %s", e)
                return
            except Exception:
                logger.exception("sending acks failed; their messages will be delivered again")
            if closing:
                return
