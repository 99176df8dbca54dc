"""The raw aio-pika side of ``scripts/bench_broker.py``: a responder in its own process.

It declares, under a name prefix ``<ns>``, with Q queues per kind (``--queues``, default 1):

- ``<ns>.direct``: a durable topic exchange; a request with routing key ``<anything>.<q>`` goes
  to the durable quorum queue ``<ns>.rpc.<q>``, consumed with manual acks;
- ``<ns>.events``: a durable topic exchange; an event with routing key ``<anything>.<q>`` goes
  to the durable quorum queue ``<ns>.events.<q>``, consumed with manual acks and counted.

Each queue has a consumer of its own on one channel, as the runtime's partition queues have.

A request's body is JSON: ``{"n": <int>}`` is echoed back as ``{"n": <int>}``, ``{"count": true}``
is answered with ``{"count": <events acked so far>}``. Each reply is published persistent, with a
publisher confirm, to the default exchange with the request's ``reply_to`` as routing key and its
``correlation_id``; the request is acked only after the confirm (what the broker runtime does).
Publishing uses a connection of its own with confirms, consuming another, as the runtime does.

Prints ``ready`` on stdout once it consumes; SIGTERM or SIGINT closes it cleanly.

Run by hand::

    .venv/bin/python scripts/bench_raw_responder.py amqp://guest:guest@localhost:5672/ rawbench \\
        --queues 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

import aio_pika
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage


def quorum_arguments() -> dict[str, Any]:
    """The same queue arguments as the broker runtime's partition queues (no dead-lettering)."""
    return {"x-queue-type": "quorum", "x-single-active-consumer": True, "x-delivery-limit": 5}


KINDS = ("rpc", "events")


async def declare(channel: AbstractChannel, prefix: str, queues: int) -> None:
    """The exchanges, queues and bindings of the raw benchmark (idempotent)."""
    for kind in KINDS:
        exchange_name = f"{prefix}.direct" if kind == "rpc" else f"{prefix}.events"
        exchange = await channel.declare_exchange(exchange_name, ExchangeType.TOPIC, durable=True)
        for q in range(queues):
            queue = await channel.declare_queue(
                f"{prefix}.{kind}.{q}", durable=True, arguments=quorum_arguments()
            )
            await queue.bind(exchange, f"*.{q}")


async def serve(url: str, prefix: str, prefetch: int, queues: int) -> None:
    publishing = await aio_pika.connect(url, client_properties={"connection_name": "raw-pub"})
    consuming = await aio_pika.connect(url, client_properties={"connection_name": "raw-con"})
    try:
        publish_channel = await publishing.channel(publisher_confirms=True)
        consume_channel = await consuming.channel()
        await consume_channel.set_qos(prefetch_count=prefetch)
        await declare(await publishing.channel(), prefix, queues)
        replies = publish_channel.default_exchange
        acked = 0

        async def on_request(message: AbstractIncomingMessage) -> None:
            request = json.loads(message.body)
            answer = {"count": acked} if "count" in request else {"n": request["n"]}
            if message.reply_to:
                reply = Message(
                    json.dumps(answer).encode(),
                    content_type="application/json",
                    delivery_mode=DeliveryMode.PERSISTENT,
                    correlation_id=message.correlation_id,
                )
                await replies.publish(reply, message.reply_to, mandatory=False)
            await message.ack()

        async def on_event(message: AbstractIncomingMessage) -> None:
            nonlocal acked
            json.loads(message.body)
            await message.ack()
            acked += 1

        for kind in KINDS:
            for q in range(queues):
                queue = await consume_channel.get_queue(f"{prefix}.{kind}.{q}", ensure=False)
                await queue.consume(on_request if kind == "rpc" else on_event)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print("ready", flush=True)
        await stop.wait()
    finally:
        await consuming.close()
        await publishing.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("amqp_url")
    parser.add_argument("prefix", help="name prefix of the exchanges and queues")
    parser.add_argument("--prefetch", type=int, default=64, help="per consumer (default 64)")
    parser.add_argument("--queues", type=int, default=1, help="queues per kind (default 1)")
    args = parser.parse_args()
    asyncio.run(serve(args.amqp_url, args.prefix, args.prefetch, args.queues))
    return 0


if __name__ == "__main__":
    sys.exit(main())
