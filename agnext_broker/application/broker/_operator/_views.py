"""What an operator's commands show: plain dataclasses of what Redis and RabbitMQ hold.

Every number is read from the servers; durations are measured on Redis' clock (``TIME``), except
a dead letter's age: the time the broker wrote in ``x-death``, to this machine's clock. A value
the servers do not keep is ``None``, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    host: str
    pid: int
    started: float  # unix seconds, on the worker's clock
    expires_in_s: float  # until its heartbeat expires, on Redis' clock
    draining: bool
    agent_types: tuple[str, ...]


@dataclass(frozen=True)
class TypeView:
    agent_type: str
    partitions: int
    message_types: tuple[str, ...]
    subscriptions: int
    active_agents: int
    hosts: tuple[str, ...]  # live workers hosting it (a draining one included)


@dataclass(frozen=True)
class PartitionView:
    agent_type: str
    partition: int
    queue: str
    owner: str | None  # the worker holding the claim in Redis
    owner_live: bool
    ready: int | None  # messages waiting in the queue; None: the queue does not exist
    consumers: int | None  # the broker's count (single-active-consumer: the active one)


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    kind: str  # "type" or "type_prefix"
    topic: str  # the topic type, or the prefix followed by "*"
    agent_type: str


@dataclass(frozen=True)
class SubscriptionsView:
    version: int
    subscriptions: tuple[SubscriptionView, ...]


@dataclass(frozen=True)
class AgentView:
    key: str
    partition: int
    owner: str | None
    version: int | None  # of its saved state; None: it saved none
    last_active_s: float | None  # seconds since a worker last marked it active


@dataclass(frozen=True)
class AgentsView:
    agent_type: str
    total: int  # agents known; ``agents`` holds at most the limit asked for
    agents: tuple[AgentView, ...]


@dataclass(frozen=True)
class AgentStateView:
    agent: str  # "type/key"
    state_key: str  # where ``redis-cli GET`` finds it
    partition: int
    owner: str | None
    version: int | None
    state: dict[str, Any] | None
    applied: int  # messages it remembers applying (within the dedup window)
    responses: int  # stored responses kept for retries
    last_applied_s: float | None  # seconds since the last applied message
    last_active_s: float | None


@dataclass(frozen=True)
class DeadLetterView:
    message_id: str | None
    source: str | None
    type: str | None
    kind: str | None
    target: str | None  # "type/key" of a direct message, "topic type/source" of an event
    reason: str
    detail: str
    queue: str | None  # the partition queue it came from
    deaths: int  # times the broker dead-lettered it (x-death); 0 when a worker did
    age_s: float | None  # since the broker dead-lettered it; None: a worker's copy (no time)
    size: int  # bytes of the body


@dataclass(frozen=True)
class DeadLettersView:
    queue: str
    total: int  # messages in the dead-letter queue
    letters: tuple[DeadLetterView, ...]  # those read, at most the limit, of the reason asked


@dataclass(frozen=True)
class Unroutable:
    message_id: str | None
    why: str


@dataclass(frozen=True)
class ReplayResult:
    examined: int
    replayed: int
    unroutable: tuple[Unroutable, ...]  # left in the dead-letter queue
    left: int  # messages in the dead-letter queue afterwards
