"""Deduplication is by the CloudEvents key (ce-source, ce-id), and it is kept for a window.

A message is applied once per (source, id): the same id from another source is another message,
a retry long after (many other messages later) is still recognised and answered with the
original response, a retry whose response is no longer kept gets ``ResponseExpiredError`` (and
is still not applied twice), and past ``dedup_window`` the same (source, id) counts as new.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import redis.asyncio

from agnext_broker import AgentId, ResponseExpiredError, TopicId
from agnext_broker.application.broker import BrokerAgentRuntime
from tests.integration.apps import (
    COUNTER_TYPE,
    INCREMENTS_TOPIC,
    Increment,
    ReadCount,
    register_counter,
)
from tests.integration.test_broker_wire import Pika, doc_routing_key
from tests.integration.workers import (
    RuntimePool,
    applied_messages,
    runtimes_fixture,  # noqa: F401
    wait_until,
)
from tests.servers import AnyRabbitMQ

pytestmark = pytest.mark.integration

OTHERS = 100  # RPCs between a request and its retry
OTHER_EVENTS = 80  # events between an event and its repetition


def source_of(runtime: BrokerAgentRuntime) -> str:
    """The ce-source of what ``runtime`` sends from outside any handler."""
    return f"agnext/{runtime.settings.worker_id}"


async def count_of(runtime: BrokerAgentRuntime, key: str) -> int:
    """counter/<key>'s count; messages to it sent (or confirmed) before are counted first, as
    they are ahead of this request in its partition queue."""
    count: int = await runtime.send_message(ReadCount(), AgentId(COUNTER_TYPE, key))
    return count


def _publish_events(url: str, exchange: str, routing_key: str, events: list[Any]) -> None:
    """Publish ``(headers, body)`` pairs in order on one confirmed pika channel."""
    with Pika(url) as client:
        for headers, body in events:
            client.publish(exchange, routing_key, body, headers)


def _event_headers(source: str, ce_id: str, topic_source: str) -> dict[str, Any]:
    return {
        "ce-specversion": "1.0",
        "ce-id": ce_id,
        "ce-source": source,
        "ce-type": "Increment",
        "ce-agkind": "publish",
        "ce-agtopictype": INCREMENTS_TOPIC,
        "ce-agtopicsource": topic_source,
    }


# -- a: one id, two sources --------------------------------------------------------------------


async def test_same_message_id_from_two_runtimes_applies_twice(
    namespace: str, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    worker = await runtimes.start(register_counter)
    suffix = uuid.uuid4().hex[:6]
    client_a = await runtimes.start(worker_id=f"client-a-{suffix}")
    client_b = await runtimes.start(worker_id=f"client-b-{suffix}")
    assert source_of(client_a) != source_of(client_b)
    agent = AgentId(COUNTER_TYPE, "k")

    assert await client_a.send_message(Increment(1), agent, message_id="same") == 1
    assert await client_b.send_message(Increment(1), agent, message_id="same") == 2
    # The same source and id again is a retry: answered with its response, not applied.
    assert await client_a.send_message(Increment(1), agent, message_id="same") == 1
    assert await count_of(worker, "k") == 2

    applied = await applied_messages(redis_client, namespace, COUNTER_TYPE, "k")
    assert (source_of(client_a), "same") in applied, applied
    assert (source_of(client_b), "same") in applied, applied


async def test_same_ce_id_from_two_producers_applies_twice(
    rabbitmq: AnyRabbitMQ,
    namespace: str,
    runtimes: RuntimePool,
    redis_client: redis.asyncio.Redis,
) -> None:
    worker = await runtimes.start(register_counter)
    ce_id = f"same-{uuid.uuid4().hex[:8]}"
    key = "p"
    events = [
        (_event_headers("svc-a", ce_id, key), b'{"amount": 1}'),
        (_event_headers("svc-b", ce_id, key), b'{"amount": 1}'),
        (_event_headers("svc-a", ce_id, key), b'{"amount": 1}'),  # svc-a's redelivery
    ]
    await asyncio.to_thread(
        _publish_events,
        rabbitmq.amqp_url,
        f"{namespace}.events",
        doc_routing_key(key, INCREMENTS_TOPIC),
        events,
    )
    # Confirmed before the RPC is sent, into the same partition queue: counted first.
    assert await count_of(worker, key) == 2

    applied = await applied_messages(redis_client, namespace, COUNTER_TYPE, key)
    mine = [member for member in applied if member[1] == ce_id]  # not the ReadCount
    assert sorted(mine) == [("svc-a", ce_id), ("svc-b", ce_id)], applied


# -- b: a retry many messages later --------------------------------------------------------------


async def _rpc_then_others_then_retry(client: BrokerAgentRuntime, key: str) -> None:
    agent = AgentId(COUNTER_TYPE, key)
    assert await client.send_message(Increment(1), agent, message_id="r") == 1
    for i in range(OTHERS):
        assert await client.send_message(Increment(1), agent, message_id=f"other-{i}") == i + 2
    assert await client.send_message(Increment(1), agent, message_id="r") == 1
    assert await count_of(client, key) == OTHERS + 1


async def _event_then_others_then_again(client: BrokerAgentRuntime, key: str) -> None:
    topic = TopicId(INCREMENTS_TOPIC, key)
    await client.publish_message(Increment(1), topic, message_id="e")
    for i in range(OTHER_EVENTS):
        await client.publish_message(Increment(1), topic, message_id=f"event-{i}")
    await client.publish_message(Increment(1), topic, message_id="e")
    assert await count_of(client, key) == OTHER_EVENTS + 1


async def test_retry_100_messages_later_gets_the_original_response(
    runtimes: RuntimePool,
) -> None:
    await runtimes.start(register_counter)
    client = await runtimes.start()
    await _rpc_then_others_then_retry(client, "k")


async def test_event_repeated_80_events_later_is_applied_once(runtimes: RuntimePool) -> None:
    await runtimes.start(register_counter)
    client = await runtimes.start()
    await _event_then_others_then_again(client, "ek")


async def test_a_later_worker_still_recognises_them_from_redis(runtimes: RuntimePool) -> None:
    # The same, with the retries handled by a worker that did not handle the originals: it
    # knows them only from what Redis kept.
    first = await runtimes.start(register_counter)
    client = await runtimes.start()
    await _rpc_then_others_then_retry(client, "k")
    await _event_then_others_then_again(client, "ek")
    await runtimes.stop(first)
    await runtimes.start(register_counter)

    assert await client.send_message(Increment(1), AgentId(COUNTER_TYPE, "k"), message_id="r") == 1
    assert await count_of(client, "k") == OTHERS + 1
    await client.publish_message(Increment(1), TopicId(INCREMENTS_TOPIC, "ek"), message_id="e")
    assert await count_of(client, "ek") == OTHER_EVENTS + 1


# -- c: a retry whose response is no longer kept -------------------------------------------------

RESPONSES_KEPT = 5


async def test_retry_whose_response_is_gone_raises_response_expired(
    namespace: str, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    await runtimes.start(register_counter, responses_kept=RESPONSES_KEPT)
    client = await runtimes.start(rpc_timeout=30.0)
    agent = AgentId(COUNTER_TYPE, "k")

    assert await client.send_message(Increment(1), agent, message_id="r") == 1
    for i in range(2 * RESPONSES_KEPT):
        assert await client.send_message(Increment(1), agent, message_id=f"other-{i}") == i + 2

    # What Redis keeps: "r" is still applied, its response is gone.
    r_member = json.dumps([source_of(client), "r"], separators=(",", ":"))
    applied = await applied_messages(redis_client, namespace, COUNTER_TYPE, "k")
    assert (source_of(client), "r") in applied, applied
    kept = await redis_client.hkeys(f"{namespace}:responses:{{{COUNTER_TYPE}/k}}")
    kept_keys = {k.decode() if isinstance(k, bytes) else str(k) for k in kept}
    assert r_member not in kept_keys, kept_keys

    # A timeout (30 s) would raise RpcTimeoutError, which is not a ResponseExpiredError.
    with pytest.raises(ResponseExpiredError) as caught:
        await client.send_message(Increment(1), agent, message_id="r")
    assert isinstance(caught.value, LookupError)
    assert await count_of(client, "k") == 2 * RESPONSES_KEPT + 1  # not applied twice


# -- d: past the dedup window ---------------------------------------------------------------------


async def test_past_the_dedup_window_a_message_counts_as_new(
    namespace: str, runtimes: RuntimePool, redis_client: redis.asyncio.Redis
) -> None:
    await runtimes.start(register_counter, dedup_window=1.0)
    client = await runtimes.start()
    agent = AgentId(COUNTER_TYPE, "k")
    member = (source_of(client), "w")

    assert await client.send_message(Increment(1), agent, message_id="w") == 1
    # Within the window: a retry.
    assert await client.send_message(Increment(1), agent, message_id="w") == 1
    assert member in await applied_messages(redis_client, namespace, COUNTER_TYPE, "k")

    async def forgotten() -> bool:
        return member not in await applied_messages(redis_client, namespace, COUNTER_TYPE, "k")

    await wait_until(
        forgotten,
        timeout=30.0,
        what=f"Redis no longer lists {member} in {namespace}:applied:{{{COUNTER_TYPE}/k}}",
    )
    # Past the window: the same (source, id) is a new message.
    assert await client.send_message(Increment(1), agent, message_id="w") == 2
    assert await count_of(client, "k") == 2
