"""Every name agnext-broker puts on the wire or in Redis, in one place.

AMQP (all under the namespace ``<ns>``, default ``agnext``):

- ``<ns>.events``  topic exchange for published events
- ``<ns>.direct``  topic exchange for direct messages (send_message)
- ``<ns>.agent.<agent_type>.<partition>``  partition queues of an agent type
- ``<ns>.reply.<worker_id>``  one worker's RPC reply queue
- ``<ns>.replies``  direct exchange for RPC responses, each reply queue bound by its own name
  (so that no worker needs the default exchange, ``amq.default``, outside its namespace)
- ``<ns>.dlx`` / ``<ns>.dead-letter``  dead-letter exchange and queue

Redis. Every key starts with ``<ns>:`` (one ACL key pattern, ``~<ns>:*``, covers them all).
``{...}`` is a Redis Cluster hash tag: the registry's keys share the slot of ``{<ns>}``
(its scripts touch several of them at once), and each agent's keys the slot of
``{<agent_type>/<key>}`` (its state write touches all three):

- ``<ns>:{<ns>}:workers``  sorted set: worker id -> heartbeat expiry (ms, Redis' clock)
- ``<ns>:{<ns>}:worker-info``  hash: worker id -> JSON (agent types, host, pid, start time)
- ``<ns>:{<ns>}:types``  hash: agent type -> JSON (partitions, message types its handlers take)
- ``<ns>:{<ns>}:subscriptions``  hash: subscription -> JSON
- ``<ns>:{<ns>}:subscriptions-version``  a counter raised by every subscription change
- ``<ns>:{<ns>}:owner:<agent_type>:<partition>``  the id of the worker that holds that partition
- ``<ns>:{<ns>}:active:<agent_type>``  sorted set: agent key -> last activity (unix seconds)
- ``<ns>:agent:{<agent_type>/<key>}``  the agent's state document (JSON)
- ``<ns>:applied:{<agent_type>/<key>}``  sorted set: messages applied (``[source, id]`` as JSON)
  -> when (microseconds, Redis' clock), kept for the dedup window
- ``<ns>:responses:{<agent_type>/<key>}``  hash: applied request -> its stored response (JSON)
"""

from __future__ import annotations

from typing import Final

from ...base import AgentId

DEFAULT_NAMESPACE: Final = "agnext"

# CloudEvents extension attributes (lowercase alphanumeric, as the spec requires).
EXT_KIND: Final = "agkind"  # "send", "publish", "response", "error"
EXT_RECIPIENT: Final = "agrecipient"  # "type/key" of a direct message's recipient
EXT_TOPIC_TYPE: Final = "agtopictype"
EXT_TOPIC_SOURCE: Final = "agtopicsource"
EXT_SENDER: Final = "agsender"  # "type/key" of the sending agent, absent for outside callers
EXT_PATH: Final = "agpath"  # call path: comma-separated ids of the turns waiting for this message
EXT_CORRELATION: Final = "agcorrelation"  # RPC correlation id (also the AMQP correlation_id)
EXT_ERROR_TYPE: Final = "agerrortype"  # qualified exception type of a failed RPC
EXT_TRACEPARENT: Final = "traceparent"  # W3C trace context of the send or publish span
EXT_TRACESTATE: Final = "tracestate"  # W3C vendor trace state that goes with it

KIND_SEND: Final = "send"
KIND_PUBLISH: Final = "publish"
KIND_RESPONSE: Final = "response"
KIND_ERROR: Final = "error"
KIND_CONTROL: Final = "control"  # state and metadata requests (ce-type names the operation)
KIND_CANCEL: Final = "cancel"  # the caller of ce-agcorrelation stopped waiting

# Reasons a worker dead-letters a message (the x-agnext-reason header).
REASON_INVALID: Final = "invalid_cloudevent"
REASON_UNKNOWN_TYPE: Final = "unknown_type"
REASON_UNDECODABLE: Final = "undecodable"
REASON_UNSUPPORTED_CONTENT_TYPE: Final = "unsupported_content_type"  # e.g. pickle: never decoded
REASON_TOO_LARGE: Final = "too_large"
REASON_MISROUTED: Final = "misrouted"
REASON_HANDLER_ERROR: Final = "handler_error"
REASON_ACTIVATION_ERROR: Final = "activation_error"

# Headers of a dead-lettered message.
HEADER_DEAD_REASON: Final = "x-agnext-reason"
HEADER_DEAD_DETAIL: Final = "x-agnext-detail"
HEADER_DEAD_QUEUE: Final = "x-agnext-queue"


class Names:
    """The AMQP and Redis names of one namespace."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        if not namespace or not all(c.isalnum() or c in "-_" for c in namespace):
            raise ValueError(f"Invalid namespace {namespace!r}: use letters, digits, '-' and '_'.")
        self.namespace = namespace
        self.events_exchange = f"{namespace}.events"
        self.direct_exchange = f"{namespace}.direct"
        self.reply_exchange = f"{namespace}.replies"
        self.dead_letter_exchange = f"{namespace}.dlx"
        self.dead_letter_queue = f"{namespace}.dead-letter"
        registry = f"{namespace}:{{{namespace}}}"
        self.workers_key = f"{registry}:workers"
        self.worker_info_key = f"{registry}:worker-info"
        self.types_key = f"{registry}:types"
        self.subscriptions_key = f"{registry}:subscriptions"
        self.subscriptions_version_key = f"{registry}:subscriptions-version"
        self._owner_prefix = f"{registry}:owner"
        self._active_prefix = f"{registry}:active"

    def partition_queue(self, agent_type: str, partition: int) -> str:
        return f"{self.namespace}.agent.{agent_type}.{partition}"

    def reply_queue(self, worker_id: str) -> str:
        return f"{self.namespace}.reply.{worker_id}"

    def owner_key(self, agent_type: str, partition: int) -> str:
        return f"{self._owner_prefix}:{agent_type}:{partition}"

    def active_key(self, agent_type: str) -> str:
        return f"{self._active_prefix}:{agent_type}"

    def state_key(self, agent_id: AgentId) -> str:
        return f"{self.namespace}:agent:{{{agent_id.type}/{agent_id.key}}}"

    def applied_key(self, agent_id: AgentId) -> str:
        return f"{self.namespace}:applied:{{{agent_id.type}/{agent_id.key}}}"

    def responses_key(self, agent_id: AgentId) -> str:
        return f"{self.namespace}:responses:{{{agent_id.type}/{agent_id.key}}}"

    @property
    def state_key_pattern(self) -> str:
        """A SCAN pattern matching every agent's state key."""
        return f"{self.namespace}:agent:{{*}}"
