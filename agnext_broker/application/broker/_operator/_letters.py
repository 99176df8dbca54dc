"""Reading one dead letter: what it is, why it died, where it came from, and how to send it back.

A dead letter comes either from a worker, which copies the message into ``<ns>.dead-letter``
with ``x-agnext-reason``, ``x-agnext-detail`` and ``x-agnext-queue``, or from the broker itself
(a quorum queue's delivery limit, a policy's expiry or length limit), which adds ``x-death``:
a list, the latest first, of each queue and reason with a count and a time.

Sent back, it goes to the direct exchange with the routing key of the agent it is for (its
recipient's key, or for an event its topic source), so it reaches that agent's partition queue
whatever partition it sat in before (a misrouted one goes to the right one); its CloudEvents
headers and message id are kept, so receivers that applied it already recognise it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from ....base import AgentId
from .. import _names as n
from .._routing import HASH_BITS, direct_binding, routing_key
from ._views import DeadLetterView

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
STRUCTURED_PREFIX = "application/cloudevents"

# What dead-lettering added, taken off a message sent back.
_DEAD_HEADERS = frozenset(
    {n.HEADER_DEAD_REASON, n.HEADER_DEAD_DETAIL, n.HEADER_DEAD_QUEUE, "x-death", "x-delivery-count"}
)
_DEAD_HEADER_PREFIXES = ("x-first-death-", "x-last-death-")


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _headers(message: AbstractIncomingMessage) -> Mapping[str, Any]:
    return message.headers or {}


def attributes(message: AbstractIncomingMessage) -> dict[str, str]:
    """The message's CloudEvents attributes: its ``ce-`` headers (binary mode), else those of
    its JSON body (structured mode); empty if it has neither."""
    found = {
        name[3:]: text
        for name, value in _headers(message).items()
        if name.startswith("ce-") and (text := _text(value)) is not None
    }
    if found or not (message.content_type or "").startswith(STRUCTURED_PREFIX):
        return found
    try:
        event = json.loads(message.body)
    except ValueError:
        return {}
    if not isinstance(event, dict):
        return {}
    return {k: str(v) for k, v in event.items() if k not in ("data", "data_base64")}


def _deaths(message: AbstractIncomingMessage) -> list[Mapping[str, Any]]:
    deaths = _headers(message).get("x-death")
    if not isinstance(deaths, list):
        return []
    return [d for d in deaths if isinstance(d, Mapping)]


def reason_of(message: AbstractIncomingMessage) -> str:
    """The worker's reason, else the broker's (``delivery_limit``, ``expired``, ``maxlen``,
    ``rejected``)."""
    reason = _text(_headers(message).get(n.HEADER_DEAD_REASON))
    if reason:
        return reason
    deaths = _deaths(message)
    return (_text(deaths[0].get("reason")) if deaths else None) or "unknown"


def source_queue(message: AbstractIncomingMessage) -> str | None:
    """The queue it died in."""
    queue = _text(_headers(message).get(n.HEADER_DEAD_QUEUE))
    if queue:
        return queue
    deaths = _deaths(message)
    return _text(deaths[0].get("queue")) if deaths else None


def _target(attrs: Mapping[str, str]) -> str | None:
    if attrs.get(n.EXT_KIND) == n.KIND_PUBLISH:
        topic_type, source = attrs.get(n.EXT_TOPIC_TYPE), attrs.get(n.EXT_TOPIC_SOURCE)
        return None if topic_type is None else f"{topic_type}/{source or ''}"
    return attrs.get(n.EXT_RECIPIENT)


def _died_at(message: AbstractIncomingMessage) -> float | None:
    deaths = _deaths(message)
    when = deaths[0].get("time") if deaths else None
    if isinstance(when, datetime):
        return when.timestamp()
    if isinstance(when, int | float):
        return float(when)
    return None


def describe(message: AbstractIncomingMessage) -> DeadLetterView:
    attrs = attributes(message)
    died_at = _died_at(message)
    return DeadLetterView(
        message_id=attrs.get("id") or message.message_id,
        source=attrs.get("source"),
        type=attrs.get("type"),
        kind=attrs.get(n.EXT_KIND),
        target=_target(attrs),
        reason=reason_of(message),
        detail=_text(_headers(message).get(n.HEADER_DEAD_DETAIL)) or "",
        queue=source_queue(message),
        deaths=sum(int(d.get("count", 1) or 1) for d in _deaths(message)),
        age_s=None if died_at is None else max(0.0, time.time() - died_at),
        size=len(message.body),
    )


class CannotReplay(Exception):
    """The dead letter cannot be sent back to a partition; the message says why."""


@dataclass(frozen=True)
class Partition:
    agent_type: str
    index: int


def partition_of_queue(names: n.Names, queue: str | None) -> Partition | None:
    """``<ns>.agent.<type>.<p>`` read back (agent types may hold dots, the index cannot)."""
    prefix = f"{names.namespace}.agent."
    if queue is None or not queue.startswith(prefix):
        return None
    agent_type, _, index = queue[len(prefix) :].rpartition(".")
    return Partition(agent_type, int(index)) if agent_type and index.isdigit() else None


def _key_of(attrs: Mapping[str, str], agent_type: str) -> str | None:
    """The agent key that chose the partition: the recipient's, or an event's topic source."""
    kind = attrs.get(n.EXT_KIND)
    if kind == n.KIND_PUBLISH:
        return attrs.get(n.EXT_TOPIC_SOURCE)
    recipient = attrs.get(n.EXT_RECIPIENT)
    if kind in (n.KIND_SEND, n.KIND_CONTROL) and recipient:
        try:
            agent = AgentId.from_str(recipient)
        except ValueError:
            return None
        return agent.key if agent.type == agent_type else None
    return None


def replay_routing_key(
    names: n.Names, message: AbstractIncomingMessage, partitions_of: Callable[[str], int | None]
) -> str:
    """The direct exchange's routing key that takes the dead letter back to its agent's
    partition (``partitions_of``: the registered partition count of a type, ``None`` if it
    is not registered).

    Raises:
        CannotReplay: it did not come from a partition queue of the namespace, or its type is
            no longer registered.
    """
    queue = source_queue(message)
    partition = partition_of_queue(names, queue)
    if partition is None:
        raise CannotReplay(
            f"it came from {queue or 'an unknown queue'}, not a partition queue of namespace "
            f"{names.namespace!r}"
        )
    count = partitions_of(partition.agent_type)
    if count is None:
        raise CannotReplay(f"agent type {partition.agent_type!r} is not registered any more")
    key = _key_of(attributes(message), partition.agent_type)
    if key is not None:
        return routing_key(key, partition.agent_type)
    # No agent key to read (the message may not even be a CloudEvent): back to the partition
    # it came from, through the routing key whose hash words select just that one.
    words = direct_binding(partition.agent_type, partition.index, count).split(".", HASH_BITS)
    return ".".join([*("0" if w == "*" else w for w in words[:HASH_BITS]), words[HASH_BITS]])


def replayed(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as it was before it died: its body and properties, its headers without what
    dead-lettering added (``user_id`` and ``expiration`` are left out: the broker checks the
    one against the login, and the other already ran out once)."""
    headers = {
        name: value
        for name, value in _headers(message).items()
        if name not in _DEAD_HEADERS and not name.startswith(_DEAD_HEADER_PREFIXES)
    }
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id or attributes(message).get("id"),
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )
