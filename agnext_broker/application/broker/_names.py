"""Every name agnext-broker puts on the wire or in Redis, in one place.

AMQP (all under the namespace ``<ns>``, default ``agnext``):

- ``<ns>.events``  topic exchange for published events
- ``<ns>.direct``  topic exchange for direct messages (send_message)
- ``<ns>.agent.<agent_type>.<partition>``  partition queues of an agent type
- ``<ns>.reply.<worker_id>``  one worker's RPC reply queue
- ``<ns>.dlx`` / ``<ns>.dead-letter``  dead-letter exchange and queue

Redis (``<ns>:`` prefix; ``{...}`` is the Redis Cluster hash tag of one agent):

- ``<ns>:workers``  sorted set: worker id -> heartbeat expiry (unix seconds)
- ``<ns>:worker:<worker_id>``  JSON description of a live worker (expires)
- ``<ns>:types``  hash: agent type -> JSON (partitions, message types)
- ``<ns>:subscriptions``  hash: subscription id -> JSON
- ``<ns>:owner:<agent_type>:<partition>``  the id of the worker consuming that partition
- ``<ns>:active:<agent_type>``  sorted set: agent key -> last activity (unix seconds)
- ``<ns>:agent:{<agent_type>/<key>}``  the agent's state document (JSON)
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
EXT_TRACEPARENT: Final = "traceparent"  # W3C trace context

KIND_SEND: Final = "send"
KIND_PUBLISH: Final = "publish"
KIND_RESPONSE: Final = "response"
KIND_ERROR: Final = "error"
KIND_CONTROL: Final = "control"  # state and metadata requests (ce-type names the operation)
KIND_CANCEL: Final = "cancel"  # the caller of ce-agcorrelation stopped waiting

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
        self.dead_letter_exchange = f"{namespace}.dlx"
        self.dead_letter_queue = f"{namespace}.dead-letter"
        self.workers_key = f"{namespace}:workers"
        self.types_key = f"{namespace}:types"
        self.subscriptions_key = f"{namespace}:subscriptions"
        self.changes_channel = f"{namespace}:changes"

    def partition_queue(self, agent_type: str, partition: int) -> str:
        return f"{self.namespace}.agent.{agent_type}.{partition}"

    def reply_queue(self, worker_id: str) -> str:
        return f"{self.namespace}.reply.{worker_id}"

    def worker_key(self, worker_id: str) -> str:
        return f"{self.namespace}:worker:{worker_id}"

    def owner_key(self, agent_type: str, partition: int) -> str:
        return f"{self.namespace}:owner:{agent_type}:{partition}"

    def active_key(self, agent_type: str) -> str:
        return f"{self.namespace}:active:{agent_type}"

    def state_key(self, agent_id: AgentId) -> str:
        return f"{self.namespace}:agent:{{{agent_id.type}/{agent_id.key}}}"
